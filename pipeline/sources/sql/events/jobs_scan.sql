-- jobs, many lots: one pass over the jobs that list any lot; matched in Python against the ids.
-- (CONTAINERIDS is a comma-separated text: no index can answer "contains id X".)
-- Same order as jobs_probe, so the row order does not change at TRACE_JOBS_PROBE_MAX.
SELECT j.JOBID, j.RESOURCEID, j.RESOURCENAME, j.JOBSTATUS, j.JOBMODELNAME, j.JOBORDERNAME,
       j.CREATEDATE, j.COMPLETEDATE, j.CAUSECODENAME, j.REPAIRCODENAME, j.SYMPTOMCODENAME,
       j.CONTAINERIDS, j.CONTAINERNAMES
FROM DWH.DW_MES_JOB j
WHERE j.CONTAINERIDS IS NOT NULL
ORDER BY j.CREATEDATE DESC, j.JOBID
