# Stops and removes the commune-watch agent task. Keeps C:\ProgramData\cwatch
# (config, queue, log); delete that folder by hand to remove everything.
$TaskName = "commune-watch agent"
schtasks.exe /End /TN $TaskName 2>$null | Out-Null
schtasks.exe /Delete /TN $TaskName /F | Out-Host
