-- Seed resolve, one wildcard value: LOT containers whose {{ column }} matches :pattern.
SELECT c.CONTAINERID, c.CONTAINERNAME, {{ column }} AS MATCHED_VALUE
FROM DWH.DW_MES_CONTAINER c
WHERE c.OBJECTTYPE = 'LOT'
  AND {{ column }} LIKE :pattern ESCAPE '\'
