"""Local mode and the test rigs' servers: a real ``redis-server`` and moto's DynamoDB
server as child processes. Never installed in the production image (moto is a
local-only requirement); ``scripts/run`` runs ``python -m localmode``."""
