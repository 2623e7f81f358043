package chtest

import (
	"strings"
	"testing"
)

func TestFindZooKeeperMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := findZooKeeper("/nonexistent/zookeeper.jar")
	if err == nil {
		t.Fatal("found ZooKeeper without java or its jar")
	}
	for _, want := range []string{"apt-get install libzookeeper-java default-jre-headless", "deploy/local/test.sh"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message does not say %q: %v", want, err)
		}
	}
}
