# Test doubles of the OpenWrt shell functions an init script calls, for
# test_openwrt_package.py. POSIX sh; sourced before the init script.
#
# UCI (/lib/functions.sh): config_load sources a UCI file from $UCI_ROOT. A UCI file is
# shell-readable (`config TYPE 'name'`, `option NAME 'value'`, `list NAME 'value'`), and
# OpenWrt's own config_load evaluates `uci export` output the same way, with the same
# config/option/list functions storing CONFIG_<section>_<option>. As there: an option
# read with config_get that is empty or unset gives the default; a list reads as its
# items joined by spaces (and also as _ITEMn/_LENGTH); config_get_bool takes
# 1/on/true/yes/enabled and 0/off/false/no/disabled, else the default; config_foreach
# walks the sections of a type in file order.
#
# procd (/lib/functions/procd.sh): each call is written to $PROCD_LOG, one line per
# call and one `arg` line per argument, for the test to rebuild each instance. A
# parameter procd.sh does not know (which it would drop without a word) is an error here.
# shellcheck disable=SC3043,SC1090  # local is in dash and busybox ash; UCI files are sourced

CONFIG_SECTIONS=
CONFIG_NUM_SECTIONS=0
CONFIG_SECTION=

config() {
	CONFIG_NUM_SECTIONS=$((CONFIG_NUM_SECTIONS + 1))
	CONFIG_SECTION=${2:-cfg$CONFIG_NUM_SECTIONS}
	CONFIG_SECTIONS="$CONFIG_SECTIONS $CONFIG_SECTION"
	eval "CONFIG_${CONFIG_SECTION}_TYPE=\$1"
}

option() {
	eval "CONFIG_${CONFIG_SECTION}_$1=\$2"
}

list() {
	local len
	eval "len=\${CONFIG_${CONFIG_SECTION}_$1_LENGTH:-0}"
	len=$((len + 1))
	eval "CONFIG_${CONFIG_SECTION}_$1_ITEM$len=\$2"
	eval "CONFIG_${CONFIG_SECTION}_$1_LENGTH=\$len"
	eval "CONFIG_${CONFIG_SECTION}_$1=\"\${CONFIG_${CONFIG_SECTION}_$1:+\$CONFIG_${CONFIG_SECTION}_$1 }\$2\""
}

config_load() {
	. "$UCI_ROOT/$1"
}

config_get() {
	case "$3" in
	"") eval echo "\"\${CONFIG_${1}_${2}:-\${4}}\"" ;;
	*) eval "${1}=\${CONFIG_${2}_${3}:-\${4}}" ;;
	esac
}

config_get_bool() {
	local _tmp
	config_get _tmp "$2" "$3" "$4"
	case "$_tmp" in
	1 | on | true | yes | enabled) _tmp=1 ;;
	0 | off | false | no | disabled) _tmp=0 ;;
	*) _tmp="$4" ;;
	esac
	eval "$1=\$_tmp"
}

config_foreach() {
	local function="$1" type="$2" section cfgtype
	shift 2
	for section in $CONFIG_SECTIONS; do
		config_get cfgtype "$section" TYPE
		[ -n "$type" ] && [ "$cfgtype" != "$type" ] && continue
		"$function" "$section" "$@"
	done
}

config_list_foreach() {
	local section="$1" option="$2" function="$3" len c=1 val
	shift 3
	config_get len "$section" "${option}_LENGTH"
	[ -z "$len" ] && return 0
	while [ "$c" -le "$len" ]; do
		config_get val "$section" "${option}_ITEM$c"
		"$function" "$val" "$@"
		c=$((c + 1))
	done
}

_procd_log() {
	local a
	printf '%s\n' "$1" >>"$PROCD_LOG"
	shift
	for a in "$@"; do
		printf 'arg %s\n' "$a" >>"$PROCD_LOG"
	done
}

procd_open_instance() { _procd_log "open_instance" "$@"; }
_procd_known_param() {
	case "$1" in
	env | data | limits | command | netdev | file | respawn | watch | watchdog | error | nice | \
		term_timeout | reload_signal | pidfile | user | group | seccomp | capabilities | facility | \
		extroot | overlaydir | tmpoverlaysize | stdout | stderr | no_new_privs) ;;
	*)
		echo "procd: unknown instance parameter '$1'" >&2
		exit 1
		;;
	esac
}

procd_set_param() { _procd_known_param "$1" && _procd_log "set_param" "$@"; }
procd_append_param() { _procd_known_param "$1" && _procd_log "append_param" "$@"; }
procd_close_instance() { _procd_log "close_instance" "$@"; }
procd_add_reload_trigger() { _procd_log "add_reload_trigger" "$@"; }
