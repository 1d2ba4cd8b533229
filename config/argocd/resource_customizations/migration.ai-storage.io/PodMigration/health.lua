-- Argo CD health check for migration.ai-storage.io/PodMigration:
-- Healthy when Completed, Degraded when Failed or Cancelled, Progressing otherwise.
local hs = {}
if obj.status == nil or obj.status.phase == nil or (obj.status.phase == "Pending" and obj.status.message == nil) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to start the migration"
  return hs
end
local phase = obj.status.phase
local detail = obj.status.message or ""
if phase == "Completed" then
  hs.status = "Healthy"
elseif phase == "Failed" or phase == "Cancelled" then
  hs.status = "Degraded"
  if obj.status.reason ~= nil then
    detail = obj.status.reason .. ": " .. detail
  end
else
  hs.status = "Progressing"
  if obj.status.progress ~= nil then
    phase = phase .. " (" .. obj.status.progress .. ")"
  end
end
hs.message = phase .. ": " .. detail
return hs
