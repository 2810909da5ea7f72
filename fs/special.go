package fs

// specialNode is a FIFO, a character or block device, or a socket. The
// kernel serves opens of these itself; snapfs keeps only their attributes
// (rdev included) and extended attributes, which the embedded node serves.
type specialNode struct {
	node
}
