-- Mid-section defect: rejects of the detection lots at the detection station, per lot and loss
-- reason, all six quantities. {{ station_filter }} as in detection_lots; {{ window }} is empty or
-- limits TXNDATE to the seed window (:start_date <= TXNDATE < :end_date).
SELECT r.CONTAINERID, COALESCE(r.LOSSREASONNAME, '(未填寫)') AS LOSSREASONNAME,
       SUM(COALESCE(r.REJECTQTY, 0) + COALESCE(r.STANDBYQTY, 0) + COALESCE(r.QTYTOPROCESS, 0)
           + COALESCE(r.INPROCESSQTY, 0) + COALESCE(r.PROCESSEDQTY, 0)
           + COALESCE(r.DEFECTQTY, 0)) AS REJECTQTY
FROM DWH.DW_MES_LOTREJECTHISTORY r
WHERE r.CONTAINERID IN (:cids)
  AND {{ station_filter }}{{ window }}
GROUP BY r.CONTAINERID, COALESCE(r.LOSSREASONNAME, '(未填寫)')
ORDER BY r.CONTAINERID, LOSSREASONNAME
