#!/usr/bin/env bash
# Deploy one release on this server (run by .github/workflows/ci-deploy.yml over SSH, or by
# hand), from the checkout in the current directory:
#
#   scripts/deploy.sh <commit> <env-file>        e.g. scripts/deploy.sh 3f2c1e9 config/.env.prod
#
# 1. pre-deploy checklist on the running release (manage.py predeploy_check): a failure
#    stops here, nothing changed;
# 2. trading to PAUSE (manage.py deploy_mode pause: a PAUSE or KILL in place is kept);
# 3. the release checked out, built and started (compose up --wait: every healthcheck);
# 4. the health check through nginx (/health);
# 5. trading back to the mode it had (deploy_mode restore: only if nothing else changed the
#    mode meanwhile).
# If 3 or 4 fails: the previous release is checked out and started again, trading STAYS
# PAUSED (resume by hand once it is understood: manage.py resume --reason ... --execute),
# and the script exits 1. The previous release is kept in .previous-release.
#
# Environment: COMPOSE (default "docker compose"), COMPOSE_FILE_NAME (docker-compose.prod.yml),
# APP_SERVICE (trading-core), HEALTH_URL (http://127.0.0.1/health), HEALTH_TRIES (20),
# HEALTH_WAIT (6 s), DEPLOY_FIRST=1 for the first install (nothing running yet: steps 1, 2
# and 5 are skipped).
set -euo pipefail

usage() { echo "usage: $0 <commit> <env-file>" >&2; exit 2; }
[ $# -eq 2 ] || usage
release=$1
env_file=$2
[[ "$release" =~ ^[A-Za-z0-9._-]{1,64}$ ]] || { echo "deploy: '$release' is not a commit or tag" >&2; exit 2; }
[ -r "$env_file" ] || { echo "deploy: env file $env_file not found or not readable" >&2; exit 2; }

compose_file=${COMPOSE_FILE_NAME:-docker-compose.prod.yml}
read -r -a compose <<< "${COMPOSE:-docker compose}"
compose+=(-f "$compose_file" --env-file "$env_file")
app=${APP_SERVICE:-trading-core}
health_url=${HEALTH_URL:-http://127.0.0.1/health}
tries=${HEALTH_TRIES:-20}
wait_s=${HEALTH_WAIT:-6}
first=${DEPLOY_FIRST:-0}

say() { echo "deploy $release: $*"; }
manage() { "${compose[@]}" exec -T "$app" python manage.py "$@"; }

healthy() {
    for _ in $(seq 1 "$tries"); do
        if curl -fsS --max-time 5 "$health_url" > /dev/null; then return 0; fi
        sleep "$wait_s"
    done
    return 1
}

previous=$(git rev-parse HEAD)

if [ "$first" != 1 ]; then
    say "1/5 pre-deploy checklist"
    if ! manage predeploy_check; then
        say "the pre-deploy checklist failed: nothing was changed"
        exit 1
    fi
    say "2/5 trading to PAUSE"
    manage deploy_mode pause --release "$release" --execute
fi

echo "$previous" > .previous-release
rollback() {
    say "FAILED: $1; rolling back to $previous (trading stays PAUSED)"
    git checkout --quiet "$previous"
    "${compose[@]}" up -d --build --wait || say "the rollback did not come up healthy either: act now"
    healthy || say "the previous release is not healthy either: act now"
    say "rolled back. Resume trading by hand once the cause is understood: manage.py resume --reason ... --execute"
    exit 1
}

say "3/5 check out, build and start"
git fetch --quiet origin || say "git fetch failed: deploying what is already here"
git checkout --quiet "$release" || rollback "checkout of $release"
"${compose[@]}" build || rollback "build"
"${compose[@]}" up -d --wait || rollback "services not healthy"

say "4/5 health check ($health_url)"
healthy || rollback "$health_url did not answer"

if [ "$first" != 1 ]; then
    say "5/5 trading back to its mode"
    manage deploy_mode restore --release "$release" --execute
fi
say "done (previous release $previous)"
