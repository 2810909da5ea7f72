package fs

import (
	"encoding/binary"
	"syscall"
	"testing"
)

// acl builds a POSIX ACL xattr value from (tag, perm, id) triples.
func acl(version uint32, entries ...[3]uint32) []byte {
	v := binary.LittleEndian.AppendUint32(nil, version)
	for _, e := range entries {
		v = binary.LittleEndian.AppendUint16(v, uint16(e[0]))
		v = binary.LittleEndian.AppendUint16(v, uint16(e[1]))
		v = binary.LittleEndian.AppendUint32(v, e[2])
	}
	return v
}

func TestMinimalACLMode(t *testing.T) {
	const none = 0xffffffff
	for _, tc := range []struct {
		name  string
		value []byte
		mode  uint32
		ok    bool
		errno syscall.Errno
	}{
		{"rw-r--r--", acl(2, [3]uint32{aclUserObj, 6, none}, [3]uint32{aclGroupObj, 4, none}, [3]uint32{aclOther, 4, none}), 0o644, true, 0},
		{"rwxr-x---", acl(2, [3]uint32{aclUserObj, 7, none}, [3]uint32{aclGroupObj, 5, none}, [3]uint32{aclOther, 0, none}), 0o750, true, 0},
		{"named user: not minimal", acl(2, [3]uint32{aclUserObj, 6, none}, [3]uint32{0x02, 4, 1000}, [3]uint32{aclGroupObj, 4, none}, [3]uint32{0x10, 4, none}, [3]uint32{aclOther, 4, none}), 0, false, 0},
		{"wrong version", acl(1, [3]uint32{aclUserObj, 6, none}, [3]uint32{aclGroupObj, 4, none}, [3]uint32{aclOther, 4, none}), 0, false, syscall.EINVAL},
		{"missing other", acl(2, [3]uint32{aclUserObj, 6, none}, [3]uint32{aclGroupObj, 4, none}), 0, false, syscall.EINVAL},
		{"owner twice", acl(2, [3]uint32{aclUserObj, 6, none}, [3]uint32{aclUserObj, 6, none}, [3]uint32{aclGroupObj, 4, none}, [3]uint32{aclOther, 4, none}), 0, false, syscall.EINVAL},
		{"perm out of range", acl(2, [3]uint32{aclUserObj, 8, none}, [3]uint32{aclGroupObj, 4, none}, [3]uint32{aclOther, 4, none}), 0, false, syscall.EINVAL},
		{"truncated entry", acl(2, [3]uint32{aclUserObj, 6, none})[:9], 0, false, syscall.EINVAL},
		{"empty", nil, 0, false, syscall.EINVAL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mode, ok, errno := minimalACLMode(tc.value)
			if mode != tc.mode || ok != tc.ok || errno != tc.errno {
				t.Fatalf("got %o %v %v, want %o %v %v", mode, ok, errno, tc.mode, tc.ok, tc.errno)
			}
		})
	}
}
