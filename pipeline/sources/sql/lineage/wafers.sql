-- Lineage, the query tool's trees: the wafer lots' own containers, the LOTs named by the given
-- wafer lot ids (the FIRSTNAME of the lots cut from them); the columns of lineage/containers.
SELECT c.CONTAINERID, c.SPLITFROMID, c.CONTAINERNAME, c.MFGORDERNAME, c.FIRSTNAME, c.OBJECTTYPE,
       c.ORIGINALCONTAINERID
FROM DWH.DW_MES_CONTAINER c
WHERE c.OBJECTTYPE = 'LOT'
  AND c.CONTAINERNAME IN (:names)
