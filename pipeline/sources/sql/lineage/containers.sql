-- Lineage: the containers themselves (name, work order, wafer lot), their split parent and the
-- lot they were made from (ORIGINALCONTAINERID: a GD rework lot's reworked lot).
SELECT c.CONTAINERID, c.SPLITFROMID, c.CONTAINERNAME, c.MFGORDERNAME, c.FIRSTNAME, c.OBJECTTYPE,
       c.ORIGINALCONTAINERID
FROM DWH.DW_MES_CONTAINER c
WHERE c.CONTAINERID IN (:cids)
