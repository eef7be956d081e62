package fmcapd

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"strings"
)

// The page (web/): plain HTML, CSS and a script, embedded, served at / and
// /static/. It needs nothing from the network but fmcapd: the timeline is
// a canvas drawn by the script itself, not a charting library, since one
// bar chart does not need one and a page for incident response must load
// where only the capture node is reachable. Its API calls carry the token
// typed into it (kept for the browser session); with client certificates,
// the browser presents its own.
//
//go:embed web
var webFS embed.FS

func (s *Server) webHandler() http.Handler {
	sub, _ := fs.Sub(webFS, "web")
	files := http.FileServer(http.FS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' blob:; style-src 'self'; script-src 'self'; connect-src 'self'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		switch p := r.URL.Path; {
		case p == "/":
			// FileServer answers "/index.html" with a redirect to "/": serve
			// the directory, whose index it is.
		case strings.HasPrefix(p, "/static/") && !strings.HasSuffix(p, "/"):
		default:
			http.NotFound(w, r)
			return
		}
		files.ServeHTTP(w, r)
	})
}

// stores lists the served stores' names, the default first (the page's
// store menu). It answers who may query.
func (s *Server) storesHandler(w http.ResponseWriter, r *http.Request) {
	if _, err := s.identify(r); err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	names := make([]string, len(s.cfg.stores))
	for i, st := range s.cfg.stores {
		names[i] = st.name
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(names)
}
