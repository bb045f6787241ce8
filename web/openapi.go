package web

import (
	_ "embed"
	"net/http"
	"slices"
)

// openapiYAML is the OpenAPI 3 document of every /api/ route. Tests drive
// the real handler against it, so it cannot drift from what the server does.
//
//go:embed openapi.yaml
var openapiYAML []byte

// OpenAPI returns a copy of the API's OpenAPI 3 document (YAML).
func OpenAPI() []byte { return slices.Clone(openapiYAML) }

func (h *Handler) apiOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(openapiYAML)
}
