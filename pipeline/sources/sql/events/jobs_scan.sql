-- jobs, many lots: one pass over the jobs that list any lot; matched in Python against the ids.
-- (CONTAINERIDS is a comma-separated text: no index can answer "contains id X".)
SELECT j.JOBID, j.RESOURCEID, j.RESOURCENAME, j.JOBSTATUS, j.JOBMODELNAME, j.JOBORDERNAME,
       j.CREATEDATE, j.COMPLETEDATE, j.CAUSECODENAME, j.REPAIRCODENAME, j.SYMPTOMCODENAME,
       j.CONTAINERIDS, j.CONTAINERNAMES
FROM DWH.DW_MES_JOB j
WHERE j.CONTAINERIDS IS NOT NULL
