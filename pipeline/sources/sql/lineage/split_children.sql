-- Lineage forward: containers split off the given ones (the columns of lineage/containers).
SELECT c.CONTAINERID, c.SPLITFROMID, c.CONTAINERNAME, c.MFGORDERNAME, c.FIRSTNAME, c.OBJECTTYPE,
       c.ORIGINALCONTAINERID
FROM DWH.DW_MES_CONTAINER c
WHERE c.SPLITFROMID IN (:cids)
