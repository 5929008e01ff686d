-- Mid-section defect: the equipment family (model) of each machine in the attribution.
SELECT r.RESOURCEID, r.RESOURCEFAMILYNAME
FROM DWH.DW_MES_RESOURCE r
WHERE r.RESOURCEID IN (:ids)
