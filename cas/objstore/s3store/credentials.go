package s3store

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/minio/minio-go/v7/pkg/credentials"
)

// keys is an access key pair. Its String and error messages never show the
// secret parts.
type keys struct {
	accessKey, secretKey, sessionToken string
}

// String names the access key only.
func (k keys) String() string { return "access key " + k.accessKey }

// credentials returns k as static signature-v4 credentials; the zero keys
// give anonymous (unsigned) requests.
func (k keys) credentials() *credentials.Credentials {
	return credentials.NewStaticV4(k.accessKey, k.secretKey, k.sessionToken)
}

// loadKeys finds the access key in the order Options.CredentialsFile
// documents and returns it with a description of where it came from.
// getenv reads the environment (os.Getenv outside tests).
func loadKeys(o Options, getenv func(string) string) (keys, string, error) {
	profile := o.Profile
	if profile == "" {
		profile = getenv("AWS_PROFILE")
	}
	if profile == "" {
		profile = "default"
	}
	if o.CredentialsFile != "" {
		k, err := readCredentialsFile(o.CredentialsFile, profile)
		if err != nil {
			return keys{}, "", err
		}
		return k, fmt.Sprintf("file %s [%s]", o.CredentialsFile, profile), nil
	}
	id, secret := getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY")
	switch {
	case id != "" && secret != "":
		return keys{id, secret, getenv("AWS_SESSION_TOKEN")}, "environment", nil
	case id != "" || secret != "":
		return keys{}, "", errors.New("s3store: credentials: only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY is set")
	}
	path := getenv("AWS_SHARED_CREDENTIALS_FILE")
	if path == "" {
		home := getenv("HOME")
		if home == "" {
			return keys{}, "anonymous", nil
		}
		path = filepath.Join(home, ".aws", "credentials")
	}
	k, err := readCredentialsFile(path, profile)
	if errors.Is(err, fs.ErrNotExist) {
		return keys{}, "anonymous", nil
	}
	if err != nil {
		return keys{}, "", err
	}
	return k, fmt.Sprintf("file %s [%s]", path, profile), nil
}

// readCredentialsFile reads one profile of an AWS shared-credentials file:
//
//	# comment
//	[default]
//	aws_access_key_id = AKIA...
//	aws_secret_access_key = ...
//	aws_session_token = ...        (optional)
//
// Section names may also be written "[profile name]". Errors name the file,
// the profile and line numbers, never a value.
func readCredentialsFile(path, profile string) (keys, error) {
	f, err := os.Open(path)
	if err != nil {
		return keys{}, fmt.Errorf("s3store: credentials: %w", err)
	}
	defer f.Close()
	var (
		k       keys
		section string
		found   bool
		line    int
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		switch {
		case text == "" || text[0] == '#' || text[0] == ';':
			continue
		case text[0] == '[':
			name, ok := strings.CutSuffix(text[1:], "]")
			if !ok {
				return keys{}, fmt.Errorf("s3store: credentials %s: line %d: malformed section header", path, line)
			}
			name = strings.TrimSpace(name)
			name = strings.TrimSpace(strings.TrimPrefix(name, "profile "))
			section = name
			found = found || section == profile
			continue
		}
		name, value, ok := strings.Cut(text, "=")
		if !ok {
			return keys{}, fmt.Errorf("s3store: credentials %s: line %d: want key = value", path, line)
		}
		if section != profile {
			continue
		}
		value = strings.TrimSpace(value)
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "aws_access_key_id":
			k.accessKey = value
		case "aws_secret_access_key":
			k.secretKey = value
		case "aws_session_token":
			k.sessionToken = value
		}
	}
	if err := sc.Err(); err != nil {
		return keys{}, fmt.Errorf("s3store: credentials %s: %w", path, err)
	}
	switch {
	case !found:
		return keys{}, fmt.Errorf("s3store: credentials %s: no profile [%s]", path, profile)
	case k.accessKey == "" || k.secretKey == "":
		return keys{}, fmt.Errorf("s3store: credentials %s [%s]: aws_access_key_id and aws_secret_access_key are required", path, profile)
	}
	return k, nil
}
