# Runs first at every boot; main.py does the work (config, board, session, application).
