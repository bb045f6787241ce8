package jira

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"os"
)

func sign256(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }
