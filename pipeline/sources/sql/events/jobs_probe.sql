-- jobs, few lots: maintenance jobs whose CONTAINERIDS text contains one of the lots' ids.
-- {{ contains_any }} ORs one INSTR per id bind (:cid0, :cid1, ...); a substring test only
-- narrows the scan, the exact match on the comma-separated list is made in pipeline.stages.events.
SELECT j.JOBID, j.RESOURCEID, j.RESOURCENAME, j.JOBSTATUS, j.JOBMODELNAME, j.JOBORDERNAME,
       j.CREATEDATE, j.COMPLETEDATE, j.CAUSECODENAME, j.REPAIRCODENAME, j.SYMPTOMCODENAME,
       j.CONTAINERIDS, j.CONTAINERNAMES
FROM DWH.DW_MES_JOB j
WHERE j.CONTAINERIDS IS NOT NULL
  AND ({{ contains_any }})
ORDER BY j.CREATEDATE DESC, j.JOBID
