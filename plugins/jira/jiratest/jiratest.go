// Package jiratest is a stand-in for the parts of Jira's REST API v2 the
// Jira plugin uses (issue creation, user search, issue with changelog,
// transitions, comments), shaped like Jira Cloud's answers. No Jira can run
// in the test suite; this records every change with its author so tests can
// check what the plugin did, and lets a test act as a person in Jira.
package jiratest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// User is a Jira account.
type User struct {
	AccountID    string `json:"accountId"`
	EmailAddress string `json:"emailAddress"`
	DisplayName  string `json:"displayName"`
}

// History is one changelog entry.
type History struct {
	ID      string `json:"id"`
	Author  User   `json:"author"`
	Created string `json:"created"`
	Items   []Item `json:"items"`
}

// Item is one changed field.
type Item struct {
	Field      string `json:"field"`
	FieldType  string `json:"fieldtype"`
	FromString string `json:"fromString"`
	ToString   string `json:"toString"`
}

// Comment is one comment.
type Comment struct {
	ID      string `json:"id"`
	Author  User   `json:"author"`
	Body    string `json:"body"`
	Created string `json:"created"`
}

// Issue is an issue as the stand-in keeps it.
type Issue struct {
	ID          string
	Key         string
	Project     string
	IssueType   string
	Summary     string
	Description string
	Reporter    User
	Status      string
	Histories   []History
	Comments    []Comment
}

// Server is the stand-in. Bot is the account the plugin authenticates as
// (basic auth with its e-mail and Token).
type Server struct {
	*httptest.Server
	Bot      User
	Token    string
	Project  string
	Statuses []string // Statuses[0] is where new issues start

	// NewestFirst lists changelog histories newest first, as some Jira
	// versions do; the plugin must not depend on the order.
	NewestFirst bool

	mu     sync.Mutex
	clock  time.Time
	users  []User
	issues []*Issue
	nextID int
}

// New starts a stand-in with project key project, the workflow statuses
// (the first is the initial one) and the given accounts besides the bot.
func New(project string, statuses []string, users ...User) *Server {
	s := &Server{
		Bot:      User{AccountID: "bot-0001", EmailAddress: "gatehouse-bot@example.com", DisplayName: "Gatehouse"},
		Token:    "jira-api-token",
		Project:  project,
		Statuses: statuses,
		nextID:   10000,
		clock:    time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC),
	}
	s.users = append([]User{s.Bot}, users...)
	m := http.NewServeMux()
	m.HandleFunc("GET /rest/api/2/user/search", s.auth(s.userSearch))
	m.HandleFunc("POST /rest/api/2/issue", s.auth(s.createIssue))
	m.HandleFunc("GET /rest/api/2/issue/{key}", s.auth(s.getIssue))
	m.HandleFunc("GET /rest/api/2/issue/{key}/transitions", s.auth(s.getTransitions))
	m.HandleFunc("POST /rest/api/2/issue/{key}/transitions", s.auth(s.postTransition))
	m.HandleFunc("GET /rest/api/2/issue/{key}/comment", s.auth(s.getComments))
	m.HandleFunc("POST /rest/api/2/issue/{key}/comment", s.auth(s.postComment))
	s.Server = httptest.NewServer(m)
	return s
}

func (s *Server) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != s.Bot.EmailAddress || p != s.Token {
			jiraError(w, http.StatusUnauthorized, "Client must be authenticated to access this resource.")
			return
		}
		h(w, r)
	}
}

func jiraError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errorMessages": []string{msg}, "errors": map[string]string{}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// now is the stand-in's clock: a second later at every change, so the
// order of changes shows in their timestamps as in a real Jira.
func (s *Server) now() string {
	s.clock = s.clock.Add(time.Second)
	return s.clock.Format("2006-01-02T15:04:05.000-0700")
}

func (s *Server) userSearch(w http.ResponseWriter, r *http.Request) {
	q := strings.ToLower(r.URL.Query().Get("query"))
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []User{}
	for _, u := range s.users {
		if q != "" && (strings.Contains(strings.ToLower(u.EmailAddress), q) || strings.Contains(strings.ToLower(u.DisplayName), q)) {
			out = append(out, u)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) user(accountID string) (User, bool) {
	for _, u := range s.users {
		if u.AccountID == accountID {
			return u, true
		}
	}
	return User{}, false
}

// UserByEmail returns the account with this e-mail.
func (s *Server) UserByEmail(email string) User {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.users {
		if strings.EqualFold(u.EmailAddress, email) {
			return u
		}
	}
	panic("jiratest: no user " + email)
}

func (s *Server) createIssue(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Fields struct {
			Project     struct{ Key string }  `json:"project"`
			IssueType   struct{ Name string } `json:"issuetype"`
			Summary     string                `json:"summary"`
			Description string                `json:"description"`
			Reporter    *struct {
				AccountID string `json:"accountId"`
			} `json:"reporter"`
		} `json:"fields"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		jiraError(w, http.StatusBadRequest, "Invalid request payload.")
		return
	}
	f := in.Fields
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case f.Project.Key != s.Project:
		writeJSON(w, http.StatusBadRequest, map[string]any{"errorMessages": []string{}, "errors": map[string]string{"project": "valid project is required"}})
		return
	case f.IssueType.Name == "" || f.Summary == "":
		writeJSON(w, http.StatusBadRequest, map[string]any{"errorMessages": []string{}, "errors": map[string]string{"summary": "You must specify a summary of the issue."}})
		return
	case strings.ContainsAny(f.Summary, "\r\n") || len(f.Summary) > 255:
		writeJSON(w, http.StatusBadRequest, map[string]any{"errorMessages": []string{}, "errors": map[string]string{"summary": "The summary is invalid because it contains newline characters or is too long."}})
		return
	}
	reporter := s.Bot
	if f.Reporter != nil {
		u, ok := s.user(f.Reporter.AccountID)
		if !ok {
			writeJSON(w, http.StatusBadRequest, map[string]any{"errorMessages": []string{}, "errors": map[string]string{"reporter": "Specify a valid value for reporter"}})
			return
		}
		reporter = u
	}
	s.nextID++
	is := &Issue{ID: strconv.Itoa(s.nextID), Key: fmt.Sprintf("%s-%d", s.Project, len(s.issues)+1), Project: f.Project.Key,
		IssueType: f.IssueType.Name, Summary: f.Summary, Description: f.Description, Reporter: reporter, Status: s.Statuses[0]}
	s.issues = append(s.issues, is)
	writeJSON(w, http.StatusCreated, map[string]string{"id": is.ID, "key": is.Key, "self": s.URL + "/rest/api/2/issue/" + is.ID})
}

func (s *Server) find(key string) *Issue {
	for _, is := range s.issues {
		if is.Key == key || is.ID == key {
			return is
		}
	}
	return nil
}

// issueJSON is the issue as GET /rest/api/2/issue shows it.
func (s *Server) issueJSON(is *Issue, changelog bool) map[string]any {
	out := map[string]any{
		"id": is.ID, "key": is.Key, "self": s.URL + "/rest/api/2/issue/" + is.ID,
		"fields": map[string]any{
			"summary": is.Summary, "description": is.Description,
			"project":   map[string]string{"key": is.Project},
			"issuetype": map[string]string{"name": is.IssueType},
			"reporter":  is.Reporter,
			"status":    map[string]string{"name": is.Status},
		},
	}
	if changelog {
		h := append([]History{}, is.Histories...)
		if s.NewestFirst {
			slices.Reverse(h)
		}
		out["changelog"] = map[string]any{"startAt": 0, "maxResults": len(h), "total": len(h), "histories": h}
	}
	return out
}

func (s *Server) getIssue(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	is := s.find(r.PathValue("key"))
	if is == nil {
		jiraError(w, http.StatusNotFound, "Issue does not exist or you do not have permission to see it.")
		return
	}
	writeJSON(w, http.StatusOK, s.issueJSON(is, strings.Contains(r.URL.Query().Get("expand"), "changelog")))
}

// Every status can be reached from every other: transition id i+1 leads
// to Statuses[i].
func (s *Server) getTransitions(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	is := s.find(r.PathValue("key"))
	if is == nil {
		jiraError(w, http.StatusNotFound, "Issue does not exist or you do not have permission to see it.")
		return
	}
	ts := []map[string]any{}
	for i, st := range s.Statuses {
		if st != is.Status {
			ts = append(ts, map[string]any{"id": strconv.Itoa(i + 1), "name": "To " + st, "to": map[string]string{"name": st}})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"transitions": ts})
}

func (s *Server) postTransition(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Transition struct{ ID string } `json:"transition"`
	}
	_ = json.NewDecoder(r.Body).Decode(&in)
	s.mu.Lock()
	defer s.mu.Unlock()
	is := s.find(r.PathValue("key"))
	if is == nil {
		jiraError(w, http.StatusNotFound, "Issue does not exist or you do not have permission to see it.")
		return
	}
	i, err := strconv.Atoi(in.Transition.ID)
	if err != nil || i < 1 || i > len(s.Statuses) || s.Statuses[i-1] == is.Status {
		jiraError(w, http.StatusBadRequest, "Transition id '"+in.Transition.ID+"' is not valid for this issue.")
		return
	}
	s.move(is, s.Statuses[i-1], s.Bot)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) move(is *Issue, status string, by User) {
	is.Histories = append(is.Histories, History{ID: strconv.Itoa(len(is.Histories) + 1), Author: by, Created: s.now(),
		Items: []Item{{Field: "status", FieldType: "jira", FromString: is.Status, ToString: status}}})
	is.Status = status
}

func (s *Server) getComments(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	is := s.find(r.PathValue("key"))
	if is == nil {
		jiraError(w, http.StatusNotFound, "Issue does not exist or you do not have permission to see it.")
		return
	}
	cs := append([]Comment{}, is.Comments...)
	writeJSON(w, http.StatusOK, map[string]any{"startAt": 0, "maxResults": len(cs), "total": len(cs), "comments": cs})
}

func (s *Server) postComment(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Body string `json:"body"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Body == "" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"errorMessages": []string{}, "errors": map[string]string{"comment": "Comment body can not be empty!"}})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	is := s.find(r.PathValue("key"))
	if is == nil {
		jiraError(w, http.StatusNotFound, "Issue does not exist or you do not have permission to see it.")
		return
	}
	c := s.comment(is, s.Bot, in.Body)
	writeJSON(w, http.StatusCreated, c)
}

func (s *Server) comment(is *Issue, by User, body string) Comment {
	c := Comment{ID: strconv.Itoa(20000 + len(is.Comments)), Author: by, Body: body, Created: s.now()}
	is.Comments = append(is.Comments, c)
	return c
}

// Move changes the issue's status as the person with this e-mail would in
// Jira's UI, and returns the body of the jira:issue_updated webhook Jira
// would then send.
func (s *Server) Move(key, status, email string) []byte {
	by := s.UserByEmail(email)
	s.mu.Lock()
	defer s.mu.Unlock()
	is := s.find(key)
	if is == nil {
		panic("jiratest: no issue " + key)
	}
	from := is.Status
	s.move(is, status, by)
	body, _ := json.Marshal(map[string]any{
		"timestamp":             time.Now().UnixMilli(),
		"webhookEvent":          "jira:issue_updated",
		"issue_event_type_name": "issue_generic",
		"user":                  by,
		"issue":                 s.issueJSON(is, false),
		"changelog": map[string]any{"id": is.Histories[len(is.Histories)-1].ID,
			"items": []Item{{Field: "status", FieldType: "jira", FromString: from, ToString: status}}},
	})
	return body
}

// Comment adds a comment as the person with this e-mail.
func (s *Server) Comment(key, email, body string) {
	by := s.UserByEmail(email)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.comment(s.find(key), by, body)
}

// Issue returns a copy of the issue with this key, or nil.
func (s *Server) Issue(key string) *Issue {
	s.mu.Lock()
	defer s.mu.Unlock()
	is := s.find(key)
	if is == nil {
		return nil
	}
	c := *is
	c.Histories = append([]History{}, is.Histories...)
	c.Comments = append([]Comment{}, is.Comments...)
	return &c
}

// Issues returns copies of every issue, in creation order.
func (s *Server) Issues() []Issue {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Issue, 0, len(s.issues))
	for _, is := range s.issues {
		c := *is
		c.Histories = append([]History{}, is.Histories...)
		c.Comments = append([]Comment{}, is.Comments...)
		out = append(out, c)
	}
	return out
}
