-- Mid-section defect page options: the distinct loss reasons of the warehouse's rejects (the
-- page's loss-reason list), trimmed. Blanks are dropped by the caller (Oracle's TRIM('') is
-- NULL, SQLite's is ''); sorted by the caller too (one order whatever the database's collation).
SELECT DISTINCT TRIM(r.LOSSREASONNAME) AS LOSSREASONNAME
FROM DWH.DW_MES_LOTREJECTHISTORY r
WHERE r.LOSSREASONNAME IS NOT NULL
