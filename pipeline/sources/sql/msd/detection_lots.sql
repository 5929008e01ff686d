-- Mid-section defect: the lots that tracked in at the detection station, one row per lot: its
-- latest track-in there (equipment, time), with that session's original load as input (MSD-10):
-- the largest TRACKINQTY of the session (same lot, track-in time and equipment), since each
-- partial track-out of a session records only what remained at its start. The one place this
-- rule lives: both directions read their detection input from here.
-- {{ station_filter }}: the station's workcenter patterns as :wc_* binds (pipeline.workcenters).
-- {{ scope }}: a date window (:start_date <= track-in < :end_date) or an id list (:cids).
-- Sorted by lot name (the id where there is none), then id: the order seeds are listed in.
SELECT t.CONTAINERID, t.CONTAINERNAME, t.MFGORDERNAME, t.PJ_TYPE, t.PRODUCTLINENAME, t.WORKFLOW,
       t.FINISHEDRUNCARD, t.DETECTION_EQUIPMENTID, t.DETECTION_EQUIPMENTNAME, t.TRACKINQTY,
       t.TRACKINTIMESTAMP
FROM (
    SELECT h.CONTAINERID, c.CONTAINERNAME, c.MFGORDERNAME, c.PJ_TYPE,
           TRIM(c.PRODUCTLINENAME) AS PRODUCTLINENAME, h.SPECNAME AS WORKFLOW,
           h.FINISHEDRUNCARD, h.EQUIPMENTID AS DETECTION_EQUIPMENTID,
           h.EQUIPMENTNAME AS DETECTION_EQUIPMENTNAME,
           MAX(COALESCE(h.TRACKINQTY, 0)) OVER (
               PARTITION BY h.CONTAINERID, h.TRACKINTIMESTAMP, h.EQUIPMENTID
           ) AS TRACKINQTY,
           h.TRACKINTIMESTAMP,
           ROW_NUMBER() OVER (
               PARTITION BY h.CONTAINERID
               ORDER BY h.TRACKINTIMESTAMP DESC, h.TRACKOUTTIMESTAMP DESC NULLS LAST, h.SPECNAME
           ) AS RN
    FROM DWH.DW_MES_LOTWIPHISTORY h
    JOIN DWH.DW_MES_CONTAINER c ON c.CONTAINERID = h.CONTAINERID
    WHERE {{ scope }}
      AND h.EQUIPMENTID IS NOT NULL
      AND h.TRACKINTIMESTAMP IS NOT NULL
      AND c.OBJECTTYPE = 'LOT'
      AND {{ station_filter }}
) t
WHERE t.RN = 1
ORDER BY COALESCE(NULLIF(t.CONTAINERNAME, ''), t.CONTAINERID), t.CONTAINERID
