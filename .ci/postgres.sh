# Sourced by .ci/run: a real PostgreSQL for the state tests (issue 15). Starts the machine's PostgreSQL 15 when it
# is installed and we are root, makes a role and a database for the tests, and exports SHEETBOT_TEST_POSTGRES.
# Without one the PostgreSQL tests skip (tests/state_backends.py says how to run them); an exported
# SHEETBOT_TEST_POSTGRES (another server) is kept as it is.
if [ -n "${SHEETBOT_TEST_POSTGRES:-}" ]; then
    echo "PostgreSQL state tests: against \$SHEETBOT_TEST_POSTGRES"
elif ! command -v pg_ctlcluster > /dev/null || ! pg_lsclusters -h 2> /dev/null | grep -q '^15 *main '; then
    echo "PostgreSQL state tests: will skip (no PostgreSQL 15 cluster on this machine)"
elif [ "$(id -u)" != 0 ]; then
    echo "PostgreSQL state tests: will skip (starting the machine's PostgreSQL needs root)"
else
    pg_lsclusters -h | grep -q '^15 *main .* online' || pg_ctlcluster --skip-systemctl-redirect 15 main start
    pg_port=$(pg_lsclusters -h | awk '$1 == "15" && $2 == "main" {print $3}')
    runuser -u postgres -- psql -q -p "$pg_port" -v ON_ERROR_STOP=1 > /dev/null <<'SQL'
SELECT 'CREATE ROLE sheetbot_ci LOGIN PASSWORD ''sheetbot_ci''' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sheetbot_ci')\gexec
SELECT 'CREATE DATABASE sheetbot_ci OWNER sheetbot_ci' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'sheetbot_ci')\gexec
SQL
    export SHEETBOT_TEST_POSTGRES="postgresql://sheetbot_ci:sheetbot_ci@127.0.0.1:$pg_port/sheetbot_ci"
    echo "PostgreSQL state tests: against the machine's PostgreSQL 15 (port $pg_port)"
fi
