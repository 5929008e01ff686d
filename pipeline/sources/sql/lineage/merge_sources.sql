-- Lineage backward: lots merged into the given (combined assembly) lots.
SELECT m.CONTAINERID, m.LOTID, m.FINISHEDNAME
FROM DWH.DW_MES_PJ_COMBINEDASSYLOTS m
WHERE m.LOTID IN (:cids)
