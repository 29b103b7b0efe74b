# Sourced by the scripts that need root: `require_root "why"` ends the script, with what to type, when it
# does not run as root. sudo is not assumed: a fresh Debian machine where one logs in as root has none.
require_root() {
    [ "$(id -u)" = 0 ] && return 0
    local script; script=$(basename "$0")
    {
        echo "$script: run as root ($1)."
        echo "  as root:          bash $0"
        if command -v sudo >/dev/null; then
            echo "  or with sudo:     sudo bash $0"
        else
            echo "  or, without sudo: su -c 'bash $0'"
        fi
    } >&2
    exit 1
}
