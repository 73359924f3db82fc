#include <CUnit/Basic.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "cfg.h"

static char tmpdir[] = "/tmp/strata-test-cfg.XXXXXX";
static int file_seq;

static int suite_init(void)
{
	log_init("test_cfg", false, LOG_LVL_INFO);
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int suite_clean(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *de;
	char path[PATH_MAX];

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmpdir, de->d_name);
		unlink(path);
	}
	closedir(d);
	return rmdir(tmpdir);
}

/* Writes len bytes into a new file of the test directory; path gets its name. */
static void write_bytes(const char *data, size_t len, char *path, size_t pathlen)
{
	snprintf(path, pathlen, "%s/cfg%03d.xml", tmpdir, ++file_seq);
	FILE *f = fopen(path, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_EQUAL(fwrite(data, 1, len, f), len);
	fclose(f);
}

static int load_text(const char *xml, enum cfg_role role, struct cfg *out, char *err, size_t errlen,
		     char *path, size_t pathlen)
{
	write_bytes(xml, strlen(xml), path, pathlen);
	return cfg_load(path, role, out, err, errlen);
}

/* Loads xml and checks that it fails with every expected fragment in the message. */
static void expect_error(const char *xml, enum cfg_role role, const char *want)
{
	struct cfg c;
	char err[4096];
	char path[PATH_MAX];

	memset(&c, 0x5a, sizeof(c));
	int rc = load_text(xml, role, &c, err, sizeof(err), path, sizeof(path));
	CU_ASSERT_EQUAL(rc, -1);
	if (strstr(err, want) == NULL)
		fprintf(stderr, "\nwanted \"%s\"\n   got \"%s\"\n   for %s\n", want, err, xml);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, want));
	/* Every message starts with the file name. */
	CU_ASSERT_EQUAL(strncmp(err, path, strlen(path)), 0);
	/* A failed load leaves the caller's struct alone (SIGHUP keeps the old settings). */
	CU_ASSERT_EQUAL(c.name[0], 0x5a);
}

/* Redirects stderr into a file until capture_end(), which returns what was written. */
struct capture {
	int saved;
	char path[PATH_MAX];
	char text[8192];
};

static void capture_begin(struct capture *cap)
{
	snprintf(cap->path, sizeof(cap->path), "%s/stderr%03d.txt", tmpdir, ++file_seq);
	fflush(stderr);
	cap->saved = dup(STDERR_FILENO);
	int fd = open(cap->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CU_ASSERT_FATAL(fd >= 0 && cap->saved >= 0);
	dup2(fd, STDERR_FILENO);
	close(fd);
}

static const char *capture_end(struct capture *cap)
{
	fflush(stderr);
	dup2(cap->saved, STDERR_FILENO);
	close(cap->saved);
	FILE *f = fopen(cap->path, "r");
	size_t n = f ? fread(cap->text, 1, sizeof(cap->text) - 1, f) : 0;
	if (f)
		fclose(f);
	cap->text[n] = '\0';
	return cap->text;
}

static void test_examples_load(void)
{
	static const struct {
		const char *file;
		enum cfg_role role;
		const char *name;
	} cases[] = {
		{ "conf/master.xml", CFG_ROLE_MASTER, "master-1" },
		{ "conf/slave.xml", CFG_ROLE_SLAVE, "branch-paris" },
		{ "conf/dp.xml", CFG_ROLE_DP, "dp-paris-3rd-floor" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char path[PATH_MAX];
		char err[4096];
		struct cfg c, def;

		snprintf(path, sizeof(path), "%s/%s", STRATA_SOURCE_DIR, cases[i].file);
		int rc = cfg_load(path, cases[i].role, &c, err, sizeof(err));
		if (rc != 0)
			fprintf(stderr, "\n%s\n", err);
		CU_ASSERT_EQUAL_FATAL(rc, 0);
		CU_ASSERT_EQUAL(c.role, cases[i].role);
		CU_ASSERT_STRING_EQUAL(c.name, cases[i].name);

		/* The examples document the defaults: apart from identity they must match. */
		cfg_defaults(&def, cases[i].role);
		memcpy(def.name, c.name, sizeof(def.name));
		memcpy(def.master_host, c.master_host, sizeof(def.master_host));
		memcpy(def.master_token, c.master_token, sizeof(def.master_token));
		memcpy(def.slave_host, c.slave_host, sizeof(def.slave_host));
		memcpy(def.slave_token, c.slave_token, sizeof(def.slave_token));
		/* A point's address is its identity towards agents. */
		if (cases[i].role == CFG_ROLE_DP)
			memcpy(def.push_hosts, c.push_hosts, sizeof(def.push_hosts));
		CU_ASSERT_EQUAL(memcmp(&c, &def, sizeof(c)), 0);
	}
}

static void test_defaults(void)
{
	static const char *const files[] = {
		"<server role=\"master\" name=\"m\"/>",
		"<?xml version=\"1.0\"?>\n<server role=\"slave\" name=\"s\">\n</server>\n",
	};
	struct cfg c[2], d;
	char err[1024];
	char path[PATH_MAX];

	for (int i = 0; i < 2; i++) {
		enum cfg_role role = i ? CFG_ROLE_SLAVE : CFG_ROLE_MASTER;
		int rc = load_text(files[i], role, &c[i], err, sizeof(err), path, sizeof(path));
		CU_ASSERT_EQUAL_FATAL(rc, 0);
		CU_ASSERT_STRING_EQUAL(err, "");
		cfg_defaults(&d, role);
		memcpy(d.name, c[i].name, sizeof(d.name));
		CU_ASSERT_EQUAL(memcmp(&c[i], &d, sizeof(d)), 0);
	}
	CU_ASSERT_STRING_EQUAL(c[0].name, "m");
	CU_ASSERT_STRING_EQUAL(c[1].name, "s");
	CU_ASSERT_STRING_EQUAL(c[0].admin_socket, "/run/strata/master.sock");
	CU_ASSERT_STRING_EQUAL(c[1].admin_socket, "/run/strata/slave.sock");

	const struct {
		const char *what;
		long long got;
		long long want;
	} ints[] = {
		{ "db_retry_interval", c[0].db_retry_interval, 5 },
		{ "db_connect_attempts", c[0].db_connect_attempts, 0 },
		{ "listen_port", c[0].listen_port, 7073 },
		{ "token_ttl", c[0].token_ttl, 86400 },
		{ "max_sessions", c[0].max_sessions, 256 },
		{ "master_port", c[1].master_port, 7073 },
		{ "repl_interval", c[1].repl_interval, 1800 },
		{ "repl_jitter", c[1].repl_jitter, 10 },
		{ "repl_batch_rows", c[1].repl_batch_rows, 20000 },
		{ "repl_retry_min", c[1].repl_retry_min, 10 },
		{ "repl_retry_max", c[1].repl_retry_max, 600 },
		{ "frame_max_preauth", c[1].frame_max_preauth, 65536 },
		{ "frame_max", c[1].frame_max, 16777216 },
		{ "handshake_timeout", c[1].handshake_timeout, 10 },
		{ "session_timeout", c[1].session_timeout, 120 },
		{ "log_level", c[1].log_level, LOG_LVL_INFO },
		{ "log_syslog", c[1].log_syslog, 0 },
	};
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		if (ints[i].got != ints[i].want)
			fprintf(stderr, "\n%s: %lld, want %lld\n", ints[i].what, ints[i].got,
				ints[i].want);
		CU_ASSERT_EQUAL(ints[i].got, ints[i].want);
	}
	CU_ASSERT_STRING_EQUAL(c[0].data_dir, "/var/lib/strata");
	CU_ASSERT_STRING_EQUAL(c[0].db_conninfo, "dbname=strata");
	CU_ASSERT_STRING_EQUAL(c[0].listen_address, "0.0.0.0");
	CU_ASSERT_STRING_EQUAL(c[0].cert_hosts, "localhost,127.0.0.1");
	CU_ASSERT_STRING_EQUAL(c[1].master_host, "");
	CU_ASSERT_STRING_EQUAL(c[1].master_token, "");
}

static void test_values_read(void)
{
	static const char xml[] =
		"<server name=\"branch_2.a\" role=\"slave\">\n"
		"  <replication retry-max=\"86400\" interval=\" 60 \" jitter=\"0\"/>\n"
		"  <log syslog=\"1\" level=\"debug\"/>\n"
		"  <data-dir>\n    /srv/strata &amp; co\n  </data-dir>\n"
		"  <master token=\"abc\" host=\"m.example\" port=\"+7443\"/>\n"
		"  <!-- comments are fine -->\n"
		"  <database conninfo=\"host=db user=strata\" connect-attempts=\"1000000\"/>\n"
		"</server>\n";
	struct cfg c;
	char err[1024];
	char path[PATH_MAX];

	CU_ASSERT_EQUAL_FATAL(
		load_text(xml, CFG_ROLE_SLAVE, &c, err, sizeof(err), path, sizeof(path)), 0);
	CU_ASSERT_STRING_EQUAL(c.name, "branch_2.a");
	CU_ASSERT_EQUAL(c.repl_interval, 60);
	CU_ASSERT_EQUAL(c.repl_jitter, 0);
	CU_ASSERT_EQUAL(c.repl_retry_max, 86400);
	CU_ASSERT_TRUE(c.log_syslog);
	CU_ASSERT_EQUAL(c.log_level, LOG_LVL_DEBUG);
	CU_ASSERT_STRING_EQUAL(c.data_dir, "/srv/strata & co");
	CU_ASSERT_STRING_EQUAL(c.master_host, "m.example");
	CU_ASSERT_STRING_EQUAL(c.master_token, "abc");
	CU_ASSERT_EQUAL(c.master_port, 7443);
	CU_ASSERT_STRING_EQUAL(c.db_conninfo, "host=db user=strata");
	CU_ASSERT_EQUAL(c.db_connect_attempts, 1000000);
}

/* Every integer setting, one step outside each end of its range. */
static void test_ranges(void)
{
	static const struct {
		enum cfg_role role;
		const char *element;
		const char *attribute;
		long long min;
		long long max;
	} cases[] = {
		{ CFG_ROLE_MASTER, "database", "retry-interval", 1, 3600 },
		{ CFG_ROLE_SLAVE, "database", "connect-attempts", 0, 1000000 },
		{ CFG_ROLE_MASTER, "sync-listen", "port", 1, 65535 },
		{ CFG_ROLE_MASTER, "enrolment", "token-ttl", 60, 2592000 },
		{ CFG_ROLE_MASTER, "limits", "max-sessions", 1, 1000000 },
		{ CFG_ROLE_MASTER, "limits", "frame-max-preauth", 1024, 1048576 },
		{ CFG_ROLE_SLAVE, "limits", "frame-max", 65536, 67108864 },
		{ CFG_ROLE_SLAVE, "limits", "handshake-timeout", 1, 300 },
		{ CFG_ROLE_MASTER, "limits", "session-timeout", 5, 3600 },
		{ CFG_ROLE_SLAVE, "master", "port", 1, 65535 },
		{ CFG_ROLE_SLAVE, "replication", "interval", 10, 604800 },
		{ CFG_ROLE_SLAVE, "replication", "jitter", 0, 50 },
		{ CFG_ROLE_SLAVE, "replication", "batch-rows", 100, 1000000 },
		{ CFG_ROLE_SLAVE, "replication", "retry-min", 1, 3600 },
		{ CFG_ROLE_SLAVE, "replication", "retry-max", 1, 86400 },
		{ CFG_ROLE_SLAVE, "push", "workers", 1, 64 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *role = cfg_role_name(cases[i].role);
		char xml[512];
		char want[256];

		/* retry-max must also stay >= retry-min: keep the other one out of the way. */
		const char *extra = "";
		if (strcmp(cases[i].element, "replication") == 0)
			extra = strcmp(cases[i].attribute, "retry-min") == 0
					? " retry-max=\"86400\""
					: " retry-min=\"1\"";
		for (int end = 0; end < 2; end++) {
			long long v = end ? cases[i].max + 1 : cases[i].min - 1;
			snprintf(xml, sizeof(xml),
				 "<server role=\"%s\" name=\"n\">\n\n<%s "
				 "%s=\"%lld\"%s/>\n</server>\n",
				 role, cases[i].element, cases[i].attribute, v, extra);
			snprintf(want, sizeof(want), ":3: %s/@%s: %lld is %s %lld",
				 cases[i].element, cases[i].attribute, v,
				 end ? "above the maximum" : "below the minimum",
				 end ? cases[i].max : cases[i].min);
			expect_error(xml, cases[i].role, want);

			/* The limits themselves are accepted. */
			struct cfg c;
			char err[1024];
			char path[PATH_MAX];
			v = end ? cases[i].max : cases[i].min;
			snprintf(xml, sizeof(xml),
				 "<server role=\"%s\" name=\"n\"><%s %s=\"%lld\"%s/></server>",
				 role, cases[i].element, cases[i].attribute, v, extra);
			int rc = load_text(xml, cases[i].role, &c, err, sizeof(err), path,
					   sizeof(path));
			if (rc != 0)
				fprintf(stderr, "\n%s\n", err);
			CU_ASSERT_EQUAL(rc, 0);
		}
	}
}

static void test_errors(void)
{
	static char long_socket[300];
	static char long_name[300];
	static char long_name_xml[400];
	static char long_socket_xml[500];

	memset(long_socket, 'a', 108);
	long_socket[0] = '/';
	memset(long_name, 'n', 64);
	snprintf(long_name_xml, sizeof(long_name_xml), "<server role=\"master\" name=\"%s\"/>",
		 long_name);
	snprintf(long_socket_xml, sizeof(long_socket_xml),
		 "<server role=\"master\" name=\"m\"><admin socket=\"%s\"/></server>", long_socket);

	static const struct {
		enum cfg_role role;
		const char *xml;
		const char *want;
	} cases[] = {
		/* values */
		{ CFG_ROLE_SLAVE,
		  "<server role=\"slave\" name=\"s\"><replication interval=\"5\"/></server>",
		  ":1: replication/@interval: 5 is below the minimum 10" },
		{ CFG_ROLE_SLAVE,
		  "<server role=\"slave\" name=\"s\"><replication "
		  "interval=\"99999999999999999999\"/></server>",
		  "replication/@interval: 99999999999999999999 is out of range 10..604800" },
		{ CFG_ROLE_SLAVE,
		  "<server role=\"slave\" name=\"s\"><replication "
		  "interval=\"2147483648\"/></server>",
		  "replication/@interval: 2147483648 is out of range" },
		{ CFG_ROLE_SLAVE,
		  "<server role=\"slave\" name=\"s\"><replication interval=\"10s\"/></server>",
		  "'interval': '10s' is not a valid value" },
		{ CFG_ROLE_SLAVE,
		  "<server role=\"slave\" name=\"s\"><replication interval=\"\"/></server>",
		  "'interval': '' is not a valid value" },
		{ CFG_ROLE_SLAVE,
		  "<server role=\"slave\" name=\"s\">\n<replication retry-min=\"60\" "
		  "retry-max=\"30\"/></server>",
		  ":2: replication/@retry-max: 30 is below retry-min 60" },
		{ CFG_ROLE_SLAVE,
		  "<server role=\"slave\" name=\"s\">\n\n<master token=\"t\"/></server>",
		  ":3: master/@token is set but master/@host is not" },
		{ CFG_ROLE_MASTER,
		  "<server role=\"master\" name=\"m\"><log level=\"trace\"/></server>",
		  "attribute 'level': [facet 'enumeration'] The value 'trace'" },
		{ CFG_ROLE_MASTER,
		  "<server role=\"master\" name=\"m\"><log syslog=\"yes\"/></server>",
		  "'syslog': 'yes' is not a valid value" },
		{ CFG_ROLE_MASTER,
		  "<server role=\"master\" name=\"m\"><data-dir></data-dir></server>",
		  "Element 'data-dir'" },
		{ CFG_ROLE_MASTER,
		  "<server role=\"master\" name=\"m\"><data-dir>  </data-dir></server>",
		  "data-dir: must not be empty" },
		{ CFG_ROLE_MASTER, long_socket_xml,
		  ":1: admin/@socket: value is longer than 107 bytes" },
		/* roles */
		{ CFG_ROLE_SLAVE, "<server role=\"master\" name=\"m\"/>",
		  ":1: this file is for role master; strata-slave needs role slave" },
		{ CFG_ROLE_MASTER, "<server role=\"slave\" name=\"s\"/>",
		  "this file is for role slave; strata-master needs role master" },
		{ CFG_ROLE_MASTER, "<server role=\"peer\" name=\"s\"/>",
		  "attribute 'role': [facet 'enumeration'] The value 'peer'" },
		{ CFG_ROLE_MASTER, "<server name=\"s\"/>", "The attribute 'role' is required" },
		{ CFG_ROLE_MASTER,
		  "<server role=\"master\" name=\"m\">\n<master host=\"h\"/></server>",
		  ":2: <master> is a slave setting; this file is for role master" },
		{ CFG_ROLE_MASTER, "<server role=\"master\" name=\"m\"><replication/></server>",
		  "<replication> is a slave setting; this file is for role master" },
		/* The master has no agent port and no endpoints to license. */
		{ CFG_ROLE_MASTER, "<server role=\"master\" name=\"m\"><push port=\"7074\"/></server>",
		  "<push> is a slave and distribution point setting; this file is for role master" },
		{ CFG_ROLE_MASTER, "<server role=\"master\" name=\"m\"><licence seats=\"5\"/></server>",
		  "<licence> is a slave setting; this file is for role master" },
		{ CFG_ROLE_SLAVE,
		  "<server role=\"slave\" name=\"s\"><sync-listen port=\"1\"/></server>",
		  "<sync-listen> is a master setting; this file is for role slave" },
		{ CFG_ROLE_SLAVE, "<server role=\"slave\" name=\"s\"><enrolment/></server>",
		  "<enrolment> is a master setting; this file is for role slave" },
		{ CFG_ROLE_SLAVE,
		  "<server role=\"slave\" name=\"s\"><limits max-sessions=\"9\"/></server>",
		  "limits/@max-sessions is a master setting; this file is for role slave" },
		/* names */
		{ CFG_ROLE_MASTER, "<server role=\"master\" name=\"a b\"/>",
		  "attribute 'name': [facet 'pattern'] The value 'a b'" },
		{ CFG_ROLE_MASTER, "<server role=\"master\" name=\"\"/>",
		  "attribute 'name': [facet 'pattern'] The value ''" },
		{ CFG_ROLE_MASTER, "<server role=\"master\" name=\"a/b\"/>",
		  "attribute 'name': [facet 'pattern'] The value 'a/b'" },
		{ CFG_ROLE_MASTER, "<server role=\"master\" name=\"caf\xc3\xa9\"/>",
		  "attribute 'name': [facet 'pattern']" },
		{ CFG_ROLE_MASTER, long_name_xml, "attribute 'name': [facet 'pattern']" },
		{ CFG_ROLE_MASTER, "<server role=\"master\"/>",
		  "The attribute 'name' is required" },
		/* structure */
		{ CFG_ROLE_MASTER, "<server role=\"master\" name=\"m\">\n<bogus/></server>",
		  ":2: Element 'bogus': This element is not expected" },
		{ CFG_ROLE_MASTER,
		  "<server role=\"master\" name=\"m\"><log colour=\"red\"/></server>",
		  "The attribute 'colour' is not allowed" },
		{ CFG_ROLE_MASTER, "<server role=\"master\" name=\"m\" colour=\"red\"/>",
		  "The attribute 'colour' is not allowed" },
		{ CFG_ROLE_MASTER, "<server role=\"master\" name=\"m\"><log/><log/></server>",
		  "Element 'log': This element is not expected" },
		{ CFG_ROLE_MASTER, "<config role=\"master\" name=\"m\"/>", "Element 'config'" },
		{ CFG_ROLE_MASTER, "<server xmlns=\"urn:x\" role=\"master\" name=\"m\"/>",
		  "Element '{urn:x}server'" },
		{ CFG_ROLE_MASTER, "<server role=\"master\" name=\"m\">text</server>",
		  "Character content other than whitespace is not allowed" },
		{ CFG_ROLE_MASTER, "<server role=\"master\" name=\"m\"><log>x</log></server>",
		  "Element 'log'" },
		/* malformed XML */
		{ CFG_ROLE_MASTER,
		  "<server role=\"master\" name=\"m\">\n<log level=\"info\">\n</server>\n",
		  ":3: Opening and ending tag mismatch: log line 2 and server" },
		{ CFG_ROLE_MASTER,
		  "<server role=\"master\" name=\"m\">\n\n\n<log level=\"info/>\n</server>",
		  ":5: Unescaped '<' not allowed in attributes values" },
		{ CFG_ROLE_MASTER, "", ": file is empty" },
		{ CFG_ROLE_MASTER, "  \n", ":2: Start tag expected" },
		{ CFG_ROLE_MASTER, "<server role=\"master\" name=\"&foo;\"/>",
		  "Entity 'foo' not defined" },
		{ CFG_ROLE_MASTER, "<server role='master' name='m'/><server/>",
		  "Extra content at the end of the document" },
		/* distribution points */
		{ CFG_ROLE_DP, "<server role=\"dp\" name=\"d\"/>",
		  "slave/@host is needed" },
		{ CFG_ROLE_DP,
		  "<server role=\"dp\" name=\"d\"><slave host=\"s\"/><push port=\"0\"/></server>",
		  "push/@port: a distribution point needs a port" },
		{ CFG_ROLE_DP,
		  "<server role=\"dp\" name=\"d\"><slave host=\"s\"/>"
		  "<database conninfo=\"x\"/></server>",
		  "<database> is a master and slave setting; this file is for role dp" },
		{ CFG_ROLE_DP,
		  "<server role=\"dp\" name=\"d\"><slave host=\"s\"/><push heartbeat=\"9\"/>"
		  "</server>",
		  "push/@heartbeat is a slave setting; this file is for role dp" },
		{ CFG_ROLE_SLAVE, "<server role=\"slave\" name=\"s\"><slave host=\"x\"/></server>",
		  "<slave> is a distribution point setting; this file is for role slave" },
		{ CFG_ROLE_SLAVE, "<server role=\"dp\" name=\"d\"><slave host=\"x\"/></server>",
		  "this file is for role dp; strata-slave needs role slave" },
		{ CFG_ROLE_DP, "<server role=\"boss\" name=\"d\"/>", "role" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_error(cases[i].xml, cases[i].role, cases[i].want);
}

static void test_several_errors(void)
{
	static const char xml[] = "<server role=\"slave\" name=\"s\">\n"
				  "<limits frame-max=\"1\"/>\n"
				  "<replication jitter=\"51\"/>\n"
				  "</server>\n";
	struct cfg c;
	char err[2048];
	char path[PATH_MAX];

	CU_ASSERT_EQUAL(load_text(xml, CFG_ROLE_SLAVE, &c, err, sizeof(err), path, sizeof(path)),
			-1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, ":2: limits/@frame-max: 1 is below the minimum 65536"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, ":3: replication/@jitter: 51 is above the maximum 50"));

	/* A small buffer still holds a terminated prefix of the message. */
	char small[16];
	CU_ASSERT_EQUAL(cfg_load(path, CFG_ROLE_SLAVE, &c, small, sizeof(small)), -1);
	CU_ASSERT_EQUAL(strlen(small), sizeof(small) - 1);
	CU_ASSERT_EQUAL(strncmp(small, path, sizeof(small) - 1), 0);
}

static void test_libxml_quiet(void)
{
	struct capture cap;
	struct cfg c;
	char err[1024];
	char path[PATH_MAX];

	capture_begin(&cap);
	int rc1 = load_text("<server role=\"master\" name=\"m\">\n<log>\n</server>",
			    CFG_ROLE_MASTER, &c, err, sizeof(err), path, sizeof(path));
	int rc2 = load_text("<server role=\"master\" name=\"m\"><bogus/></server>", CFG_ROLE_MASTER,
			    &c, err, sizeof(err), path, sizeof(path));
	int rc3 = load_text("<!DOCTYPE server [<!ENTITY a \"b\">]><server/>", CFG_ROLE_MASTER, &c,
			    err, sizeof(err), path, sizeof(path));
	const char *out = capture_end(&cap);
	CU_ASSERT_EQUAL(rc1, -1);
	CU_ASSERT_EQUAL(rc2, -1);
	CU_ASSERT_EQUAL(rc3, -1);
	CU_ASSERT_STRING_EQUAL(out, "");
}

/* Counts open and read events on path while cfg_load() runs on xml. */
static int watched_load(const char *xml, const char *watched, char *err, size_t errlen)
{
	struct cfg c;
	char path[PATH_MAX];
	char events[4096];
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);

	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(inotify_add_watch(fd, watched, IN_OPEN | IN_ACCESS) >= 0);
	CU_ASSERT_EQUAL(load_text(xml, CFG_ROLE_MASTER, &c, err, errlen, path, sizeof(path)), -1);
	ssize_t n = read(fd, events, sizeof(events));
	close(fd);
	return n > 0 ? (int)n : 0;
}

static void test_doctype(void)
{
	static const char laughs[] =
		"<?xml version=\"1.0\"?>\n"
		"<!DOCTYPE server [\n"
		" <!ENTITY lol \"lol\">\n"
		" <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
		" <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n"
		" <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
		" <!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"
		" <!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">\n"
		" <!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">\n"
		" <!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">\n"
		" <!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">\n"
		" <!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">\n"
		"]>\n"
		"<server role=\"master\" name=\"m\"><data-dir>&lol9;</data-dir></server>\n";
	static const char passwd[] =
		"<?xml version=\"1.0\"?>\n"
		"<!DOCTYPE server [ <!ENTITY xxe SYSTEM \"file:///etc/passwd\"> ]>\n"
		"<server role=\"master\" name=\"m\"><data-dir>&xxe;</data-dir></server>\n";
	static const struct {
		const char *xml;
		const char *want;
	} cases[] = {
		{ laughs, ":2: DOCTYPE is not allowed" },
		{ passwd, ":2: DOCTYPE is not allowed" },
		{ "<!DOCTYPE server><server role=\"master\" name=\"m\"/>",
		  ":1: DOCTYPE is not allowed" },
		{ "<!DOCTYPE server SYSTEM \"file:///etc/passwd\">\n<server role=\"master\" "
		  "name=\"m\"/>",
		  ":1: DOCTYPE is not allowed" },
		{ "<!DOCTYPE server PUBLIC \"-//x//y\" \"http://127.0.0.1:9/x.dtd\">\n<server/>",
		  ":1: DOCTYPE is not allowed" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		expect_error(cases[i].xml, CFG_ROLE_MASTER, cases[i].want);

		struct cfg c;
		char err[4096];
		char path[PATH_MAX];
		CU_ASSERT_EQUAL(load_text(cases[i].xml, CFG_ROLE_MASTER, &c, err, sizeof(err), path,
					  sizeof(path)),
				-1);
		/* One message, nothing of the entity's target in it. */
		CU_ASSERT_PTR_NULL(strchr(err, '\n'));
		CU_ASSERT_PTR_NULL(strstr(err, "root:"));
		CU_ASSERT_PTR_NULL(strstr(err, "lollol"));
	}

	/* The file an external entity or DTD names is never opened. */
	char secret[PATH_MAX];
	char xml[2 * PATH_MAX];
	char err[4096];
	snprintf(secret, sizeof(secret), "%s/secret.txt", tmpdir);
	FILE *f = fopen(secret, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs("top secret\n", f);
	fclose(f);

	snprintf(xml, sizeof(xml),
		 "<!DOCTYPE server [ <!ENTITY xxe SYSTEM \"file://%s\"> ]>\n"
		 "<server role=\"master\" name=\"m\"><data-dir>&xxe;</data-dir></server>\n",
		 secret);
	CU_ASSERT_EQUAL(watched_load(xml, secret, err, sizeof(err)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "DOCTYPE is not allowed"));
	CU_ASSERT_PTR_NULL(strstr(err, "top secret"));

	snprintf(xml, sizeof(xml),
		 "<!DOCTYPE server SYSTEM \"%s\">\n<server role=\"master\" name=\"m\"/>\n", secret);
	CU_ASSERT_EQUAL(watched_load(xml, secret, err, sizeof(err)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "DOCTYPE is not allowed"));

	/* The watch works: opening the file is seen. */
	snprintf(xml, sizeof(xml), "<server role=\"master\" name=\"m\"/>");
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT(inotify_add_watch(fd, secret, IN_OPEN | IN_ACCESS) >= 0);
	f = fopen(secret, "r");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fclose(f);
	CU_ASSERT(read(fd, err, sizeof(err)) > 0);
	close(fd);
}

static void test_files(void)
{
	struct cfg c;
	char err[1024];
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/does-not-exist.xml", tmpdir);
	CU_ASSERT_EQUAL(cfg_load(path, CFG_ROLE_MASTER, &c, err, sizeof(err)), -1);
	char want[PATH_MAX + 64];
	snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", path);
	CU_ASSERT_STRING_EQUAL(err, want);

	CU_ASSERT_EQUAL(cfg_load(tmpdir, CFG_ROLE_MASTER, &c, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a regular file"));

	/* Exactly 1 MiB is accepted, one byte more is refused before parsing. */
	static const char head[] = "<server role=\"master\" name=\"big\"><!--";
	static const char tail[] = "--></server>";
	size_t size = 1024 * 1024;
	char *buf = malloc(size + 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	memset(buf, 'x', size + 1);
	memcpy(buf, head, strlen(head));
	memcpy(buf + size - strlen(tail), tail, strlen(tail));
	write_bytes(buf, size, path, sizeof(path));
	CU_ASSERT_EQUAL(cfg_load(path, CFG_ROLE_MASTER, &c, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(c.name, "big");

	memcpy(buf + size + 1 - strlen(tail), tail, strlen(tail));
	write_bytes(buf, size + 1, path, sizeof(path));
	CU_ASSERT_EQUAL(cfg_load(path, CFG_ROLE_MASTER, &c, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: file is larger than 1 MiB", path);
	CU_ASSERT_STRING_EQUAL(err, want);
	free(buf);

	/* Embedded NUL bytes are not XML. */
	static const char nul[] = "<server role=\"master\" name=\"m\">\0</server>";
	write_bytes(nul, sizeof(nul) - 1, path, sizeof(path));
	CU_ASSERT_EQUAL(cfg_load(path, CFG_ROLE_MASTER, &c, err, sizeof(err)), -1);
	CU_ASSERT_EQUAL(strncmp(err, path, strlen(path)), 0);
}

static void test_reload(void)
{
	static const char master_old[] = "<server role=\"master\" name=\"m\"/>";
	static const char master_new[] =
		"<server role=\"master\" name=\"m2\">"
		"<log level=\"debug\" syslog=\"true\"/>"
		"<data-dir>/srv/other</data-dir>"
		"<enrolment token-ttl=\"3600\"/>"
		"<sync-listen port=\"7443\"/>"
		"<limits max-sessions=\"10\" frame-max=\"65536\" handshake-timeout=\"20\" "
		"session-timeout=\"30\"/>"
		"</server>";
	static const char slave_new[] =
		"<server role=\"slave\" name=\"s\">"
		"<replication interval=\"60\" jitter=\"0\" batch-rows=\"100\" retry-min=\"1\" "
		"retry-max=\"2\"/>"
		"<master host=\"m.example\" token=\"very-secret\"/>"
		"</server>";
	struct cfg cur, next, expect;
	char err[1024];
	char path[PATH_MAX];
	struct capture cap;

	CU_ASSERT_EQUAL_FATAL(
		load_text(master_old, CFG_ROLE_MASTER, &cur, err, sizeof(err), path, sizeof(path)),
		0);
	CU_ASSERT_EQUAL_FATAL(
		load_text(master_new, CFG_ROLE_MASTER, &next, err, sizeof(err), path, sizeof(path)),
		0);
	expect = cur;
	expect.log_level = LOG_LVL_DEBUG;
	expect.token_ttl = 3600;
	expect.max_sessions = 10;
	expect.handshake_timeout = 20;
	expect.session_timeout = 30;

	capture_begin(&cap);
	cfg_reload(&cur, &next);
	const char *out = capture_end(&cap);
	CU_ASSERT_EQUAL(memcmp(&cur, &expect, sizeof(cur)), 0);

	static const char *const logged[] = {
		"setting log/@level: info -> debug",
		"setting enrolment/@token-ttl: 86400 -> 3600",
		"setting limits/@max-sessions: 256 -> 10",
		"setting limits/@handshake-timeout: 10 -> 20",
		"setting limits/@session-timeout: 120 -> 30",
		"setting server/@name changed: restart needed",
		"setting data-dir changed: restart needed",
		"setting log/@syslog changed: restart needed",
		"setting sync-listen/@port changed: restart needed",
		"setting limits/@frame-max changed: restart needed",
	};
	for (size_t i = 0; i < sizeof(logged) / sizeof(logged[0]); i++) {
		if (strstr(out, logged[i]) == NULL)
			fprintf(stderr, "\nmissing \"%s\" in:\n%s\n", logged[i], out);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, logged[i]));
	}
	CU_ASSERT_PTR_NULL(strstr(out, "frame-max-preauth"));
	CU_ASSERT_PTR_NULL(strstr(out, "conninfo"));

	/* Reloading the same settings again changes and logs nothing. */
	next = cur;
	capture_begin(&cap);
	cfg_reload(&cur, &next);
	CU_ASSERT_STRING_EQUAL(capture_end(&cap), "");

	/* Slave: the replication settings follow; the token is never logged. */
	cfg_defaults(&cur, CFG_ROLE_SLAVE);
	snprintf(cur.name, sizeof(cur.name), "s");
	CU_ASSERT_EQUAL_FATAL(
		load_text(slave_new, CFG_ROLE_SLAVE, &next, err, sizeof(err), path, sizeof(path)),
		0);
	expect = cur;
	expect.repl_interval = 60;
	expect.repl_jitter = 0;
	expect.repl_batch_rows = 100;
	expect.repl_retry_min = 1;
	expect.repl_retry_max = 2;
	capture_begin(&cap);
	cfg_reload(&cur, &next);
	out = capture_end(&cap);
	CU_ASSERT_EQUAL(memcmp(&cur, &expect, sizeof(cur)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "setting replication/@interval: 1800 -> 60"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "setting replication/@retry-max: 600 -> 2"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "setting master/@token changed: restart needed"));
	CU_ASSERT_PTR_NULL(strstr(out, "very-secret"));
}

static void test_unreachable_ranges(void)
{
	static const char xml[] = "<server role=\"slave\" name=\"s\">\n"
				  "<push workers=\"3\"/>\n"
				  "<unreachable-ranges>\n"
				  "  <range cidr=\"10.20.0.0/16\"/>\n"
				  "  <range cidr=\" 2001:db8::/32 \"/>\n"
				  "</unreachable-ranges>\n"
				  "</server>\n";
	struct cfg c, cur;
	char err[4096], path[PATH_MAX], text[IPRANGE_TEXT_MAX];
	struct capture cap;

	CU_ASSERT_EQUAL_FATAL(
		load_text(xml, CFG_ROLE_SLAVE, &c, err, sizeof(err), path, sizeof(path)), 0);
	CU_ASSERT_EQUAL(c.push_workers, 3);
	CU_ASSERT_EQUAL_FATAL(c.n_unreachable, 2);
	iprange_format(&c.unreachable[0], text, sizeof(text));
	CU_ASSERT_STRING_EQUAL(text, "10.20.0.0/16");
	iprange_format(&c.unreachable[1], text, sizeof(text));
	CU_ASSERT_STRING_EQUAL(text, "2001:db8::/32");
	CU_ASSERT_TRUE(iprange_list_contains(c.unreachable, (size_t)c.n_unreachable, "10.20.9.9"));
	CU_ASSERT_FALSE(iprange_list_contains(c.unreachable, (size_t)c.n_unreachable, "10.21.0.1"));

	expect_error("<server role=\"slave\" name=\"s\">\n<unreachable-ranges>\n"
		     "<range cidr=\"10.0.0.0/8\"/>\n<range cidr=\"10.0.0.0/33\"/>\n"
		     "</unreachable-ranges></server>",
		     CFG_ROLE_SLAVE,
		     ":4: unreachable-ranges/range/@cidr: '10.0.0.0/33' is not a valid CIDR");
	expect_error("<server role=\"slave\" name=\"s\"><unreachable-ranges>"
		     "<range cidr=\"10.0.0.1/8\"/></unreachable-ranges></server>",
		     CFG_ROLE_SLAVE, "bits are set after the prefix");
	expect_error("<server role=\"slave\" name=\"s\"><unreachable-ranges>"
		     "<range/></unreachable-ranges></server>",
		     CFG_ROLE_SLAVE, "cidr");
	expect_error("<server role=\"master\" name=\"m\">\n<unreachable-ranges/></server>",
		     CFG_ROLE_MASTER, ":2: <unreachable-ranges> is a slave setting");

	/* One range more than the limit. */
	size_t cap_len = 128 + (CFG_RANGES_MAX + 1) * 40;
	char *many = malloc(cap_len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(many);
	size_t used = (size_t)snprintf(many, cap_len,
				       "<server role=\"slave\" name=\"s\"><unreachable-ranges>");
	for (int i = 0; i <= CFG_RANGES_MAX; i++)
		used += (size_t)snprintf(many + used, cap_len - used,
					 "<range cidr=\"10.%d.%d.0/24\"/>", i / 256, i % 256);
	snprintf(many + used, cap_len - used, "</unreachable-ranges></server>");
	expect_error(many, CFG_ROLE_SLAVE, "unreachable-ranges: more than 256 ranges");
	free(many);

	/* Reloadable: the new list replaces the old one, with a log line. */
	cfg_defaults(&cur, CFG_ROLE_SLAVE);
	snprintf(cur.name, sizeof(cur.name), "s");
	cur.push_workers = 3;
	capture_begin(&cap);
	cfg_reload(&cur, &c);
	const char *out = capture_end(&cap);
	CU_ASSERT_EQUAL(memcmp(&cur, &c, sizeof(cur)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "setting unreachable-ranges: 0 -> 2 ranges"));
}

static void test_http(void)
{
	static const char with[] = "<server role=\"master\" name=\"m\">\n"
				   "<http port=\"8443\" token-file=\"/etc/strata/api.token\"/>\n"
				   "</server>\n";
	static const char without[] = "<server role=\"slave\" name=\"s\"></server>\n";
	struct cfg c;
	char err[4096], path[PATH_MAX];

	CU_ASSERT_EQUAL_FATAL(
		load_text(without, CFG_ROLE_SLAVE, &c, err, sizeof(err), path, sizeof(path)), 0);
	CU_ASSERT_FALSE(c.http_enabled);
	CU_ASSERT_STRING_EQUAL(c.http_address, "127.0.0.1");
	CU_ASSERT_EQUAL(c.http_port, 7075);
	CU_ASSERT_EQUAL(c.http_max_body, 65536);
	CU_ASSERT_EQUAL(c.http_timeout, 30);
	CU_ASSERT_EQUAL_FATAL(
		load_text(with, CFG_ROLE_MASTER, &c, err, sizeof(err), path, sizeof(path)), 0);
	CU_ASSERT_TRUE(c.http_enabled);
	CU_ASSERT_EQUAL(c.http_port, 8443);
	CU_ASSERT_STRING_EQUAL(c.http_token_file, "/etc/strata/api.token");
	CU_ASSERT_STRING_EQUAL(c.http_client_ca, "");
	expect_error("<server role=\"master\" name=\"m\"><http max-body=\"100\"/></server>",
		     CFG_ROLE_MASTER, "http/@max-body: 100 is below the minimum 1024");
	expect_error("<server role=\"dp\" name=\"d\"><slave host=\"h\"/><http/></server>",
		     CFG_ROLE_DP, "<http> is a master and slave setting");
}

static void test_role_names(void)
{
	CU_ASSERT_STRING_EQUAL(cfg_role_name(CFG_ROLE_MASTER), "master");
	CU_ASSERT_STRING_EQUAL(cfg_role_name(CFG_ROLE_SLAVE), "slave");
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("cfg", suite_init, suite_clean);
	CU_add_test(s, "example files load", test_examples_load);
	CU_add_test(s, "defaults", test_defaults);
	CU_add_test(s, "values are read", test_values_read);
	CU_add_test(s, "every range limit", test_ranges);
	CU_add_test(s, "errors name file, line and reason", test_errors);
	CU_add_test(s, "several errors are all reported", test_several_errors);
	CU_add_test(s, "libxml2 does not write to stderr", test_libxml_quiet);
	CU_add_test(s, "DOCTYPE, external entities, billion laughs", test_doctype);
	CU_add_test(s, "missing, oversized and odd files", test_files);
	CU_add_test(s, "reload copies only reloadable settings", test_reload);
	CU_add_test(s, "unreachable ranges and push workers", test_unreachable_ranges);
	CU_add_test(s, "role names", test_role_names);
	CU_add_test(s, "http element", test_http);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned fails = CU_get_number_of_failures();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
