-- Mid-section defect page options: the distinct (type, package, BOP, function) combinations of
-- the containers, trimmed: the Type/Package pickers narrow each other over these tuples, one row
-- per combination, never per lot. A combination needs a type, a package and a BOP; the function
-- may be missing. Blanks are dropped by the caller (Oracle's TRIM('') is NULL, SQLite's is '').
SELECT DISTINCT TRIM(c.PJ_TYPE) AS PJ_TYPE, TRIM(c.PRODUCTLINENAME) AS PRODUCTLINENAME,
       TRIM(c.PJ_BOP) AS PJ_BOP, TRIM(c.PJ_FUNCTION) AS PJ_FUNCTION
FROM DWH.DW_MES_CONTAINER c
WHERE c.PJ_TYPE IS NOT NULL
  AND c.PRODUCTLINENAME IS NOT NULL
  AND c.PJ_BOP IS NOT NULL
