-- Seed resolve, exact values: LOT containers whose {{ column }} is one of :values.
-- {{ column }} is chosen by the resolver's own table (never by input).
SELECT c.CONTAINERID, c.CONTAINERNAME, {{ column }} AS MATCHED_VALUE
FROM DWH.DW_MES_CONTAINER c
WHERE c.OBJECTTYPE = 'LOT'
  AND {{ column }} IN (:values)
