#!/usr/bin/env bash
# Build the code_interpreter sandbox image (assistd-sandbox:latest) without a container registry.
#
#   sandbox/build-image.sh            # or: make sandbox-image
#   ASSISTD_SANDBOX_IMAGE=name:tag sandbox/build-image.sh
#   ASSISTD_SANDBOX_VARIANT=slim sandbox/build-image.sh   # without the OpenAI package set
#
# The Dockerfile is an ordinary `FROM debian:bookworm-slim` one. When that base image is not
# present locally (no registry here), it is made with debootstrap from the Debian mirror that
# apt on this machine already uses. The result is labelled with a hash of the recipe
# (Dockerfile, the driver package, the pip pins, this script, the variant); a later run with the same hash
# does nothing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
image="${ASSISTD_SANDBOX_IMAGE:-assistd-sandbox:latest}"
variant="${ASSISTD_SANDBOX_VARIANT:-full}"
base="debian:bookworm-slim"
suite="bookworm"
label="assistd.recipe-hash"

log() { echo "build-image: $*"; }

recipe_hash() {
    (cd "$here" && { sha256sum Dockerfile .dockerignore build-image.sh requirements.txt constraints.txt profile
        find driver -type f ! -path '*/__pycache__/*' | LC_ALL=C sort | xargs sha256sum; echo "$variant"; } |
        sha256sum | cut -c1-16)
}

# Print the first URI apt uses for the given suite (deb822 .sources files or one-line .list files).
apt_uri_for_suite() {
    local want="$1" f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v want="$want" '
            function flush() {
                if (types ~ /(^| )deb( |$)/ && enabled != "no" && (" " suites " ") ~ (" " want " ") && uri != "") {
                    print uri; found = 1; exit
                }
                types = ""; suites = ""; uri = ""; enabled = ""
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            tolower($1) == "types:"   { $1 = ""; types = $0 }
            tolower($1) == "suites:"  { $1 = ""; suites = $0 }
            tolower($1) == "uris:"    { uri = $2 }
            tolower($1) == "enabled:" { enabled = tolower($2) }
            END { if (!found) flush() }
        ' "$f" | head -n1
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        # deb [options] URI SUITE COMPONENTS...
        sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" |
            awk -v want="$want" '$1 == "deb" && $3 == want { print $2; exit }'
    done
}

# Unmount anything debootstrap left mounted below $1, then delete it.
remove_rootfs() {
    local dir="$1" m
    [ -d "$dir" ] || return 0
    for m in $(awk -v d="$dir" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r); do
        umount -l "$m" || true
    done
    rm -rf --one-file-system "$dir"
}

make_base_image() {
    local mirror security rootfs
    mirror="$(apt_uri_for_suite "$suite" | head -n1)"
    [ -n "$mirror" ] || { log "cannot find a Debian '$suite' mirror in /etc/apt"; exit 1; }
    security="$(apt_uri_for_suite "$suite-security" | head -n1)"

    if ! command -v debootstrap >/dev/null 2>&1; then
        log "installing debootstrap"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq </dev/null
        apt-get install -y -qq --no-install-recommends debootstrap </dev/null >/dev/null
    fi

    rootfs="$(mktemp -d /var/tmp/assistd-rootfs.XXXXXX)"
    # shellcheck disable=SC2064 # expand now: the trap must remove this very directory
    trap "remove_rootfs '$rootfs'" EXIT

    log "debootstrap $suite from $mirror (takes a few minutes)"
    local keyring=()
    if [ -f /usr/share/keyrings/debian-archive-keyring.gpg ]; then
        keyring=(--keyring=/usr/share/keyrings/debian-archive-keyring.gpg)
    fi
    debootstrap --variant=minbase "${keyring[@]}" "$suite" "$rootfs" "$mirror" </dev/null >/tmp/assistd-debootstrap.log 2>&1 ||
        { tail -n 30 /tmp/assistd-debootstrap.log; exit 1; }

    # Make it look like the official slim image: same apt sources layout, no docs/man/locales.
    rm -f "$rootfs/etc/apt/sources.list"
    {
        printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
            "$mirror" "$suite" "$suite"
        if [ -n "$security" ]; then
            printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
                "$security" "$suite"
        fi
    } >"$rootfs/etc/apt/sources.list.d/debian.sources"
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CFG
    echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
    find "$rootfs/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
    rm -rf "$rootfs"/usr/share/{man,groff,info,lintian,linda}/*
    find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
        "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/*
    : >"$rootfs/etc/hostname"
    : >"$rootfs/etc/resolv.conf"

    log "importing $base"
    tar --numeric-owner -C "$rootfs" -c . | docker import -c 'CMD ["bash"]' - "$base" >/dev/null
    remove_rootfs "$rootfs"
    trap - EXIT
}

main() {
    local want have
    want="$(recipe_hash)"
    have="$(docker image inspect -f "{{ index .Config.Labels \"$label\" }}" "$image" 2>/dev/null || true)"
    if [ "$have" = "$want" ]; then
        log "$image is up to date (recipe $want)"
        return 0
    fi

    if docker image inspect "$base" >/dev/null 2>&1; then
        log "base image $base present"
    else
        log "base image $base missing, creating it"
        make_base_image
    fi

    log "building $image ($variant, recipe $want)"
    # The classic builder resolves FROM against local images only, which is what we need offline.
    # pip inside the build must trust the same extra CAs as this machine (TLS-intercepting egress).
    local build_log="/tmp/assistd-sandbox-build.${image//[^A-Za-z0-9._-]/_}.log" extra_ca=() pem
    pem="$(cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true)"
    if [ -n "$pem" ]; then
        extra_ca=(--build-arg "EXTRA_CA_CERTS=$pem")
    fi
    case "$variant" in full | slim) ;; *) log "ASSISTD_SANDBOX_VARIANT must be full or slim, not '$variant'"; exit 1 ;; esac
    DOCKER_BUILDKIT=0 docker build "${extra_ca[@]}" --build-arg "VARIANT=$variant" --label "$label=$want" -t "$image" "$here" </dev/null >"$build_log" 2>&1 ||
        { tail -n 40 "$build_log"; log "docker build failed (full log: $build_log)"; exit 1; }
    # Drop the previous build of this image (now untagged), keeping the layer cache of the new one.
    docker image prune -f --filter "label=$label" >/dev/null
    log "built $image ($(docker image inspect -f '{{ .Size }}' "$image" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
}

main "$@"
