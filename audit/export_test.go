package audit

// SegmentBounds exposes how Verify splits a chain, so tests can put
// problems exactly at the seams.
func SegmentBounds(first, last int64, workers int) [][2]int64 {
	return segmentBounds(first, last, workers)
}

// AppendWithin is Append with a limit other than AppendTimeout, so a test
// of the limit need not wait a minute.
var AppendWithin = appendWithin
