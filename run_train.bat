@echo off
rem Windows CMD: make venv\ if missing, install the requirements, then train.
rem All arguments go to train.py, e.g.  run_train.bat --n_epochs 50
cd /d "%~dp0"
if not exist venv\Scripts\python.exe (
    python -m venv venv || exit /b 1
)
venv\Scripts\python.exe -m pip install -r requirements.txt || exit /b 1
venv\Scripts\python.exe train.py %*
set STATUS=%ERRORLEVEL%
echo The venv holds this project's Python: venv\Scripts\activate.bat in a terminal lets you
echo type python generate.py, python evaluate.py, tensorboard --logdir=./logs (or call venv\Scripts\python.exe).
exit /b %STATUS%
