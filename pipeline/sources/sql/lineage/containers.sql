-- Lineage: the containers themselves (name, work order, wafer lot) and their split parent.
SELECT c.CONTAINERID, c.SPLITFROMID, c.CONTAINERNAME, c.MFGORDERNAME, c.FIRSTNAME, c.OBJECTTYPE
FROM DWH.DW_MES_CONTAINER c
WHERE c.CONTAINERID IN (:cids)
