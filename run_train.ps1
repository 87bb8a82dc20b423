# Windows PowerShell: make venv\ if missing, install the requirements, then train.
# All arguments go to train.py, e.g.  .\run_train.ps1 --n_epochs 50
# PowerShell runs no script until allowed ("running scripts is disabled on this system"):
# run  Set-ExecutionPolicy -ExecutionPolicy RemoteSigned -Scope CurrentUser  once, as Python's
# venv documentation says, or use run_train.bat from CMD instead.
$ErrorActionPreference = "Stop"
Set-Location $PSScriptRoot
if (-not (Test-Path "venv\Scripts\python.exe")) {
    python -m venv venv
    if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
}
& .\venv\Scripts\python.exe -m pip install -r requirements.txt
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
& .\venv\Scripts\python.exe train.py @args
$status = $LASTEXITCODE
Write-Output "The venv holds this project's Python: '.\venv\Scripts\Activate.ps1' in a terminal lets you"
Write-Output "type python generate.py, python evaluate.py, tensorboard --logdir=./logs (or call .\venv\Scripts\python.exe)."
exit $status
