package sandbox

import (
	"encoding/binary"
	"fmt"
	"time"
)

// The sandbox's media files are small synthetic images and videos that
// the local AI stand-in can read back: a four-byte magic, then what a real
// model would find in them, then deterministic noise.
//
//	image: "SBXI", one byte of flags (bit 0: text in the image; bits 1–2:
//	       the number of faces), noise up to imageBytes
//	video: "SBXV", the duration in seconds (uint16, big-endian), noise up
//	       to videoBytes
const (
	imageMagic = "SBXI"
	videoMagic = "SBXV"
	imageBytes = 256
	videoBytes = 512
	// minVideo and maxVideo bound a video's duration.
	minVideo = 6 * time.Second
	maxVideo = 60 * time.Second
)

// image is the synthetic image of id, with text or not, and faces.
func (s *Sandbox) image(id string, text bool, faces int) []byte {
	b := make([]byte, imageBytes)
	copy(b, imageMagic)
	flags := byte(faces&3) << 1
	if text {
		flags |= 1
	}
	b[4] = flags
	s.noise(b[5:], "image", id)
	return b
}

// video is the synthetic video of id.
func (s *Sandbox) video(id string) []byte {
	b := make([]byte, videoBytes)
	copy(b, videoMagic)
	span := uint64((maxVideo - minVideo) / time.Second)
	secs := uint64(minVideo/time.Second) + s.h("duration", id)%(span+1)
	binary.BigEndian.PutUint16(b[4:6], uint16(secs))
	s.noise(b[6:], "video", id)
	return b
}

// noise fills b with a deterministic xorshift stream of parts.
func (s *Sandbox) noise(b []byte, parts ...string) {
	x := s.h(append(parts, "noise")...) | 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
}

// media is what the stand-in reads in a media file.
type media struct {
	video    bool
	text     bool
	faces    int
	duration time.Duration
}

// readMedia reads a synthetic media file; anything else is an error that
// says so (the stand-in answers it with 422, a runtime failure).
func readMedia(b []byte) (media, error) {
	switch {
	case len(b) >= 5 && string(b[:4]) == imageMagic:
		return media{text: b[4]&1 == 1, faces: int(b[4]>>1) & 3}, nil
	case len(b) >= 6 && string(b[:4]) == videoMagic:
		return media{video: true, duration: time.Duration(binary.BigEndian.Uint16(b[4:6])) * time.Second}, nil
	case len(b) == 0:
		return media{}, fmt.Errorf("no media was sent")
	}
	return media{}, fmt.Errorf("the media (%d bytes) is not an image or video the sandbox made", len(b))
}
