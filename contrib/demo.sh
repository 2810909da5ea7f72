#!/bin/sh
# The story of snapfs in about 40 lines, run by make demo from the
# repository root: a pool, a volume, a snapshot, an old version read back,
# a branch written without touching the volume, and the space each
# snapshot holds. Every line starting with $ is a command to copy.
#
# Usage: contrib/demo.sh BIN DEMODIR   (make demo: bin/snapfs demo)
set -e
B=$1
D=$2

# run prints a command as the user would type it, then runs it.
run() {
	printf '$ %s\n' "$1"
	sh -c "$1"
}
# say prints a heading.
say() {
	printf '\n# %s\n' "$1"
}

say "A pool on two member directories, a volume in it, mounted (-d: in the background)"
run "$B pool create $D/pool --member $D/disk1 --member $D/disk2"
run "$B -p $D/pool volume create home"
run "$B -p $D/pool mount home $D/mnt -d"
run "cp -a README.md docs $D/mnt/ && echo 'version 1' > $D/mnt/notes.txt"

say "A snapshot: the volume as it is now, read-only under .snapshots"
run "mkdir $D/mnt/.snapshots/monday"
run "echo 'version 2' > $D/mnt/notes.txt && rm $D/mnt/README.md"
run "cat $D/mnt/notes.txt $D/mnt/.snapshots/monday/notes.txt"
run "$B -p $D/pool diff home@monday    # what changed since: M changed, - removed, + added"
run "cp $D/mnt/.snapshots/monday/README.md $D/mnt/    # the deleted file, back"

say "A branch: a writable copy of the snapshot that shares its data"
run "$B -p $D/pool branch create home@monday try"
run "echo 'tried in the branch' > $D/mnt/.snapshots/try/notes.txt && rm -r $D/mnt/.snapshots/try/docs"
run "cat $D/mnt/.snapshots/try/notes.txt $D/mnt/notes.txt    # the branch's, the volume's"
run "ls $D/mnt    # docs is still in the volume"

say "Space: what each snapshot references, what was written since, what only it holds"
run "$B -p $D/pool snapshot list home"

printf '# Mounted at %s: try it yourself. make demo-clean unmounts and removes %s/.\n' "$D/mnt" "$D"
