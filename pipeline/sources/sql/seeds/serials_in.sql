-- Seed resolve by finished serial number: the finished (combined assembly) lot it was packed as.
-- {{ column }} is the serial column (m.FINISHEDNAME), given by the resolver.
SELECT DISTINCT m.LOTID AS CONTAINERID, c.CONTAINERNAME, {{ column }} AS MATCHED_VALUE
FROM DWH.DW_MES_PJ_COMBINEDASSYLOTS m
JOIN DWH.DW_MES_CONTAINER c ON c.CONTAINERID = m.LOTID
WHERE c.OBJECTTYPE = 'LOT'
  AND {{ column }} IN (:values)
