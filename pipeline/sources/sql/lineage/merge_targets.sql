-- Lineage forward: the combined assembly lots the given lots were merged into.
SELECT m.CONTAINERID, m.LOTID, m.FINISHEDNAME
FROM DWH.DW_MES_PJ_COMBINEDASSYLOTS m
WHERE m.CONTAINERID IN (:cids)
