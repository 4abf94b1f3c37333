<#
.SYNOPSIS
  Installs the commune-watch agent on a Windows 7/10/11 PC as a background task
  that starts at boot, runs as SYSTEM (needed for SMART) and restarts if it stops.

.DESCRIPTION
  Run in an elevated PowerShell (Run as administrator), from the folder holding
  this script and your edited agent.toml:

      powershell -ExecutionPolicy Bypass -File install-agent.ps1 -Python "C:\Python38\python.exe"

  What it does:
    1. pip install "commune-watch[agent]" for the given Python (3.8 on Windows 7).
    2. Copies agent.toml to C:\ProgramData\cwatch\agent.toml (kept if already there).
    3. Registers the scheduled task "commune-watch agent" (at startup, as SYSTEM,
       restart every minute on failure, no time limit) and starts it.
  Logs go to C:\ProgramData\cwatch\agent.log (rotated at 1 MB, 3 kept).
  Works with PowerShell 2.0 (Windows 7). Remove with uninstall-agent.ps1.
#>
param(
    [string]$Python = "python.exe",
    [string]$Config = (Join-Path (Split-Path -Parent $MyInvocation.MyCommand.Path) "agent.toml"),
    [string]$Package = "commune-watch[agent]"
)
$ErrorActionPreference = "Stop"
$TaskName = "commune-watch agent"
$DataDir = Join-Path $env:ProgramData "cwatch"

$principal = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    Write-Error "Run this script as administrator (right-click PowerShell, Run as administrator)."
}

$PythonExe = (Get-Command $Python).Path
Write-Host "Using $PythonExe"
& $PythonExe -m pip install --upgrade $Package
if ($LASTEXITCODE -ne 0) { Write-Error "pip install $Package failed" }
# pythonw.exe runs without a console window; it sits next to python.exe.
$Pythonw = Join-Path (Split-Path -Parent $PythonExe) "pythonw.exe"
if (-not (Test-Path $Pythonw)) { $Pythonw = $PythonExe }

New-Item -ItemType Directory -Force -Path $DataDir | Out-Null
$TargetConfig = Join-Path $DataDir "agent.toml"
if (-not (Test-Path $TargetConfig)) {
    if (-not (Test-Path $Config)) { Write-Error "No config at $Config: copy deploy\agent.example.toml there and edit it." }
    Copy-Item $Config $TargetConfig
}
# Check the config before installing anything that runs it.
& $PythonExe -m cwatch agent --config $TargetConfig --data-dir (Join-Path $DataDir "data") --once --print | Out-Null
if ($LASTEXITCODE -ne 0) { Write-Error "The agent refused $TargetConfig; fix the error above and run again." }

$Arguments = "-m cwatch agent --config `"$TargetConfig`" --data-dir `"$(Join-Path $DataDir 'data')`" --log-file `"$(Join-Path $DataDir 'agent.log')`""
$Xml = @"
<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <RegistrationInfo><Description>commune-watch agent: hardware health and link quality over MQTT</Description></RegistrationInfo>
  <Triggers><BootTrigger><Enabled>true</Enabled><Delay>PT1M</Delay></BootTrigger></Triggers>
  <Principals><Principal id="Author"><UserId>S-1-5-18</UserId><RunLevel>HighestAvailable</RunLevel></Principal></Principals>
  <Settings>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    <ExecutionTimeLimit>PT0S</ExecutionTimeLimit>
    <RestartOnFailure><Interval>PT1M</Interval><Count>999</Count></RestartOnFailure>
    <Priority>7</Priority>
    <StartWhenAvailable>true</StartWhenAvailable>
  </Settings>
  <Actions Context="Author"><Exec><Command>$Pythonw</Command><Arguments>$Arguments</Arguments><WorkingDirectory>$DataDir</WorkingDirectory></Exec></Actions>
</Task>
"@
$XmlPath = Join-Path $DataDir "task.xml"
[IO.File]::WriteAllText($XmlPath, $Xml, [Text.Encoding]::Unicode)
schtasks.exe /Create /TN $TaskName /XML $XmlPath /F | Out-Host
if ($LASTEXITCODE -ne 0) { Write-Error "schtasks /Create failed" }
schtasks.exe /Run /TN $TaskName | Out-Host
Write-Host "Installed. Status: schtasks /Query /TN `"$TaskName`"   Log: $DataDir\agent.log"
