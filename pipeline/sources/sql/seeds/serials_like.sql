-- Seed resolve by a wildcard serial number.
-- {{ column }} is the serial column (m.FINISHEDNAME), given by the resolver.
SELECT DISTINCT m.LOTID AS CONTAINERID, c.CONTAINERNAME, {{ column }} AS MATCHED_VALUE
FROM DWH.DW_MES_PJ_COMBINEDASSYLOTS m
JOIN DWH.DW_MES_CONTAINER c ON c.CONTAINERID = m.LOTID
WHERE c.OBJECTTYPE = 'LOT'
  AND {{ column }} LIKE :pattern ESCAPE '\'
