# Sourced by scripts/image.sh and the image test: podman settings that this kind of machine needs.
# - runc, not crun: crun refuses hosts with hybrid cgroups ("cgroups in hybrid mode not supported").
# - explicit ulimits: rootful podman's default nofile (1048576) can exceed the hard limit, and then
#   every container fails with "setrlimit: Operation not permitted".
# CONTAINERS_CONF names a generated containers.conf, so plain `podman run/build` pick these up.
payorch_podman_conf() {
  local dir=$1 nofile
  nofile=$(ulimit -Hn)
  [ "$nofile" = unlimited ] && nofile=1048576
  cat >"$dir/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=4096:4096"]
[engine]
runtime = "runc"
CONF
  export CONTAINERS_CONF=$dir/containers.conf
}
