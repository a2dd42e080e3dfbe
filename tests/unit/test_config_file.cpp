// The -config file, key files, key variables, -access-keys and the safe default
// (config_file.h, config.cpp), with files and variables supplied in memory.
#include "doctest/doctest.h"
#include "config.h"
#include "config_file.h"

#include <initializer_list>
#include <map>
#include <string>
#include <vector>

using op::Config;
using op::ConfigResult;

namespace {
using Map = std::map<std::string, std::string>;

struct World {
    Map files;  // path -> text; a missing path cannot be read
    Map env;

    ConfigResult parse(std::vector<const char*> args) const {
        std::vector<const char*> argv{"openai-proxy"};
        argv.insert(argv.end(), args.begin(), args.end());
        op::EnvLookup lookup = [this](const char* name) -> const char* {
            auto it = env.find(name);
            return it == env.end() ? nullptr : it->second.c_str();
        };
        op::ReadFile read = [this](const std::string& path, std::string& text, std::string& error) {
            auto it = files.find(path);
            if (it == files.end()) {
                error = "No such file or directory";
                return false;
            }
            text = it->second;
            return true;
        };
        return op::parse_config(static_cast<int>(argv.size()), argv.data(), lookup, read);
    }
    Config ok(std::vector<const char*> args = {"-config", "p.conf"}) const {
        ConfigResult r = parse(args);
        for (const auto& e : r.errors) INFO("error: ", e);
        REQUIRE(r.errors.empty());
        return r.config;
    }
    std::vector<std::string> errors(std::vector<const char*> args = {"-config", "p.conf"}) const {
        return parse(args).errors;
    }
};

// A world whose p.conf is `text`, with the -listen on loopback so that keys need no access keys.
World conf(const std::string& text) {
    World w;
    w.files["p.conf"] = text;
    return w;
}

// Requires exactly one error, which starts with `prefix` and contains each of `needles`.
void one_error(const World& w, const std::string& prefix, std::initializer_list<const char*> needles) {
    auto errors = w.errors();
    for (const auto& e : errors) INFO("error: ", e);
    REQUIRE(errors.size() == 1);
    INFO("error: ", errors[0]);
    CHECK(errors[0].rfind(prefix, 0) == 0);
    for (const char* n : needles) {
        INFO("expected to contain: ", n);
        CHECK(errors[0].find(n) != std::string::npos);
    }
}

const std::string kLoop = "listen = 127.0.0.1:9001\n";
}  // namespace

TEST_CASE("config file: the README example, complete") {
    World w = conf(
        "# openai-proxy configuration\n"
        "listen = 127.0.0.1:9001\n"
        "workers = 2\n"
        "access-keys = /etc/access.keys     # \"label = key\" per line\n"
        "\n"
        "[target oa]\n"
        "key-header = authorization\n"
        "attempts = 3\n"
        "retry-on = 429 500 502 503 504\n"
        "retry-body-limit = 1MiB\n"
        "head-timeout = 60s\n"
        "origin = https://api.openai.com\n"
        "key-env = OPENAI_KEYS\n"
        "egress = socks5h://127.0.0.1:1080\n"
        "origin = https://backup.example.net:8443\n"
        "key-file = /etc/backup.keys\n"
        "key = sk-written-here\n"
        "\n"
        "[default]\n"
        "origin = http://127.0.0.1:8080\n");
    w.files["/etc/access.keys"] = "# users\nalice = alice-key-0123456789\nbob = \"bob-key-0123456789#x\"\n";
    w.files["/etc/backup.keys"] = "# backup\nsk-backup-one\nteam = sk-backup-two   # the team's\n\n";
    w.env["OPENAI_KEYS"] = "main=sk-main-1, sk-main-2 sk-main-3";
    Config c = w.ok();
    CHECK(c.config_file == "p.conf");
    CHECK(c.listen.text == "127.0.0.1:9001");
    CHECK(c.workers == 2);
    CHECK(c.access_keys_file == "/etc/access.keys");
    REQUIRE(c.access_keys.size() == 2);
    CHECK(c.access_keys[0].label == "alice");
    CHECK(c.access_keys[0].key == "alice-key-0123456789");
    CHECK(c.access_keys[1].key == "bob-key-0123456789#x");  // quoted: '#' kept
    REQUIRE(c.routes.size() == 1);
    const op::Route& oa = c.routes[0];
    CHECK(oa.name == "oa");
    CHECK(oa.key_header == op::KeyHeader::Authorization);
    CHECK(oa.failover.max_attempts == 3);
    CHECK(oa.failover.statuses == std::vector<int>{429, 500, 502, 503, 504});
    CHECK(oa.failover.replay_limit == (1u << 20));
    CHECK(oa.failover.head_timeout.count() == 60000);
    REQUIRE(oa.origins.size() == 2);
    CHECK(oa.origins[0].target.host == "api.openai.com");
    REQUIRE(oa.origins[0].egress.has_value());
    CHECK(oa.origins[0].egress->kind == op::Egress::Kind::Socks5h);
    CHECK(oa.origins[0].egress->proxy.port == 1080);
    REQUIRE(oa.origins[0].keys.size() == 3);
    CHECK(oa.origins[0].keys[0].label == "main");
    CHECK(oa.origins[0].keys[0].secret == "sk-main-1");
    CHECK(oa.origins[0].keys[1].label == "oa#2");  // numbered over the target's keys
    CHECK(oa.origins[0].keys[2].label == "oa#3");
    CHECK(oa.origins[1].target.port == 8443);
    CHECK_FALSE(oa.origins[1].egress.has_value());
    REQUIRE(oa.origins[1].keys.size() == 3);
    CHECK(oa.origins[1].keys[0].label == "oa#4");
    CHECK(oa.origins[1].keys[0].secret == "sk-backup-one");
    CHECK(oa.origins[1].keys[1].label == "team");
    CHECK(oa.origins[1].keys[1].secret == "sk-backup-two");
    CHECK(oa.origins[1].keys[2].label == "oa#6");
    CHECK(oa.origins[1].keys[2].secret == "sk-written-here");
    REQUIRE(c.default_route.has_value());
    CHECK(c.default_route->origins.size() == 1);
    CHECK_FALSE(c.default_route->origins[0].target.tls);
    CHECK(c.default_route->origins[0].target.port == 8080);
    CHECK(op::config_summary(c) == "configuration OK: 2 targets, 3 origins, 6 keys, 2 access keys");
}

TEST_CASE("config file: defaults of a section, api-key, [default] labels") {
    World w = conf(kLoop + "[target az]\nkey-header = Api-Key\norigin = x.openai.azure.com\nkey = k1\n"
                           "[default]\norigin = 127.0.0.1:8443\nkey = k2\nkey = k3\n");
    Config c = w.ok();
    REQUIRE(c.routes.size() == 1);
    CHECK(c.routes[0].key_header == op::KeyHeader::ApiKey);
    CHECK(c.routes[0].failover.max_attempts == 3);
    CHECK(c.routes[0].failover.statuses == std::vector<int>{429, 500, 502, 503, 504});
    CHECK(c.routes[0].failover.head_timeout.count() == 0);
    CHECK(c.routes[0].origins[0].keys[0].label == "az#1");
    CHECK(c.default_route->origins[0].keys[1].label == "default#2");
    CHECK(c.default_route->name.empty());
}

TEST_CASE("config file: retry-on, attempts, limits") {
    Config c = conf("[target a]\norigin = h\nretry-on = 502,503\nattempts = 1\nretry-body-limit = 0\n"
                    "head-timeout = 1500ms\n")
                   .ok();
    CHECK(c.routes[0].failover.statuses == std::vector<int>{502, 503});
    CHECK(c.routes[0].failover.max_attempts == 1);
    CHECK(c.routes[0].failover.replay_limit == 0);
    CHECK(c.routes[0].failover.head_timeout.count() == 1500);
    CHECK(conf("[target a]\norigin = h\nretry-on =\n").ok().routes[0].failover.statuses.empty());
    for (const char* s : {"400", "401", "403", "404"}) {
        CAPTURE(s);
        one_error(conf(std::string("[target a]\norigin = h\nretry-on = 429 ") + s + "\n"), "p.conf:3: ",
                  {"retry-on", "never retried"});
    }
    one_error(conf("[target a]\norigin = h\nretry-on = 429 abc\n"), "p.conf:3: ", {"\"abc\" is not an HTTP status"});
    one_error(conf("[target a]\norigin = h\nretry-on = 600\n"), "p.conf:3: ", {"not an HTTP status"});
    one_error(conf("[target a]\norigin = h\nattempts = 0\n"), "p.conf:3: ", {"attempts", "1 to 100"});
    one_error(conf("[target a]\norigin = h\nretry-body-limit = 2GiB\n"), "p.conf:3: ", {"retry-body-limit"});
    // Kept in memory per request in flight: at most 64 MiB (ByteBuffer's bound is far above).
    CHECK(conf("[target a]\norigin = h\nretry-body-limit = 64MiB\n").ok().routes[0].failover.replay_limit == 64u << 20);
    one_error(conf("[target a]\norigin = h\nretry-body-limit = 65MiB\n"), "p.conf:3: ",
              {"retry-body-limit", "0 to 64MiB"});
    one_error(conf("[target a]\norigin = h\nhead-timeout = soon\n"), "p.conf:3: ", {"head-timeout"});
    one_error(conf("[target a]\norigin = h\nkey-header = bearer\n"), "p.conf:3: ",
              {"authorization or api-key"});
    one_error(conf("[target a]\norigin = h\nattempts = 2\nattempts = 3\n"), "p.conf:4: ",
              {"attempts is already set at line 3"});
}

TEST_CASE("config file: top-level settings use the flags' checks and messages") {
    Config c = conf("listen = 127.0.0.1:7000\nmax-body-size = 1MiB\nallow-private = true\n"
                    "targets = oa:api.openai.com, x:127.0.0.1:8443\nupstream-proxy = socks5://127.0.0.1:1080\n"
                    "sse-keepalive = 15s\n")
                   .ok();
    CHECK(c.listen.port == 7000);
    CHECK(c.max_body_bytes == (1u << 20));
    CHECK(c.allow_private);
    REQUIRE(c.routes.size() == 2);
    CHECK(c.routes[1].name == "x");
    REQUIRE(c.upstream_proxy.has_value());
    CHECK(c.upstream_proxy->kind == op::Egress::Kind::Socks5);
    CHECK(c.sse_keepalive.count() == 15000);
    one_error(conf("\n# c\nworkers = lots\n"), "p.conf:3: ", {"invalid value \"lots\" for workers", "whole number"});
    one_error(conf("allow-private = yes\n"), "p.conf:1: ", {"allow-private", "true or false"});
    one_error(conf("lsten = :1\n"), "p.conf:1: ", {"unknown setting \"lsten\""});
    one_error(conf("origin = h\n"), "p.conf:1: ", {"origin belongs in a [target NAME] or [default] section"});
    one_error(conf("config = other.conf\n"), "p.conf:1: ", {"config cannot be set"});
    one_error(conf("workers = 1\nworkers = 2\n"), "p.conf:2: ", {"workers is already set at line 1"});
    one_error(conf("targets = oa\n"), "p.conf:1: ", {"malformed target \"oa\"", "key:domain"});
    one_error(conf("listen\n"), "p.conf:1: ", {"expected \"name = value\""});
    one_error(conf("listen = \"127.0.0.1:1\n"), "p.conf:1: ", {"unclosed quote"});
    one_error(conf("listen = a\"b\"\n"), "p.conf:1: ", {"quote"});
    one_error(conf("= 1\n"), "p.conf:1: ", {"needs a name"});
}

TEST_CASE("config file: sections and origins") {
    one_error(conf("[target oa]\norigin = a\n[target OA]\norigin = b\n"), "p.conf:3: ",
              {"target \"oa\" is already defined at line 1"});
    one_error(conf("[default]\norigin = a\n[default]\norigin = b\n"), "p.conf:3: ", {"[default] is already defined"});
    one_error(conf("[targets oa]\norigin = a\n"), "p.conf:1: ", {"target name"});
    one_error(conf("[target a b]\norigin = a\n"), "p.conf:1: ", {"target name"});
    one_error(conf("[upstream]\norigin = a\n"), "p.conf:1: ", {"unknown section [upstream]"});
    one_error(conf("[target oa\n"), "p.conf:1: ", {"end with ]"});
    one_error(conf("\n[target oa]\nattempts = 2\n"), "p.conf:2: ", {"[target oa] has no origin line"});
    // 32 origins at most (an exchange marks those it tried in 32 bits); the 33rd is an error.
    std::string many = "[target oa]\n";
    for (int i = 1; i <= 32; ++i) many += "origin = https://o" + std::to_string(i) + ".example\n";
    CHECK(conf(many).ok().routes[0].origins.size() == 32);
    one_error(conf(many + "origin = https://o33.example\n"), "p.conf:34: ", {"[target oa] has more than 32 origins"});
    one_error(conf("[target oa]\nkey = k\norigin = a\n"), "p.conf:2: ", {"key before any origin line"});
    one_error(conf("[target oa]\negress = direct\norigin = a\n"), "p.conf:2: ", {"egress before any origin"});
    one_error(conf("[target oa]\norigin = ftp://a\n"), "p.conf:2: ", {"invalid value \"ftp://a\" for origin"});
    one_error(conf("[target oa]\norigin = a\negress = gopher://x\n"), "p.conf:3: ", {"for egress"});
    one_error(conf("[target oa]\norigin = a\negress = direct\negress = direct\n"), "p.conf:4: ",
              {"already has an egress"});
    one_error(conf("[target oa]\norigin = a\nlisten = :1\n"), "p.conf:3: ",
              {"unknown setting \"listen\" in [target oa]", "before the first [section]"});
    one_error(conf("targets = oa:a\n[target oa]\norigin = b\n"), "p.conf:2: ", {"also in targets ="});
    one_error(conf("default-target = a\n[default]\norigin = b\n"), "p.conf:2: ", {"both set the default target"});
    // egress "direct" on an origin: set, Direct (not -upstream-proxy)
    Config c = conf("[target oa]\norigin = a\negress = direct\n").ok();
    REQUIRE(c.routes[0].origins[0].egress.has_value());
    CHECK(c.routes[0].origins[0].egress->kind == op::Egress::Kind::Direct);
    // Errors of several lines, all at once and in line order.
    World w = conf("workers = x\n[target oa]\norigin = a\nkey-file = /none\nattempts = 0\n[bad]\nmax-body-size = 1\n");
    auto errors = w.errors();
    REQUIRE(errors.size() == 4);
    CHECK(errors[0].rfind("p.conf:1: ", 0) == 0);
    CHECK(errors[1] == "p.conf:4: cannot read key file \"/none\": No such file or directory");
    CHECK(errors[2].rfind("p.conf:5: ", 0) == 0);
    CHECK(errors[3].rfind("p.conf:6: ", 0) == 0);  // line 7 lands in the refused section: not reported twice
}

TEST_CASE("config file: key files and key variables") {
    World w = conf(kLoop + "[target oa]\norigin = a\nkey-file = k.keys\n");
    w.files["k.keys"] = "one-key\n\n  # comment\nlab = two-key\n";
    Config c = w.ok();
    REQUIRE(c.routes[0].origins[0].keys.size() == 2);
    CHECK(c.routes[0].origins[0].keys[0].label == "oa#1");
    CHECK(c.routes[0].origins[0].keys[1].label == "lab");

    w.files["k.keys"] = "# nothing\n";
    one_error(w, "p.conf:4: ", {"key file \"k.keys\" holds no key"});
    w.files["k.keys"] = "a = k1\na = k2\n";
    one_error(w, "k.keys:2: ", {"duplicate key label \"a\"", "k.keys:1"});
    w.files["k.keys"] = "a = k1\nb = k1\n";
    one_error(w, "k.keys:2: ", {"same key as \"a\""});
    w.files["k.keys"] = "a =\n";
    one_error(w, "k.keys:1: ", {"empty key"});
    w.files["k.keys"] = "a b = k1\n";
    one_error(w, "k.keys:1: ", {"label \"a b\" may only hold"});
    w.files["k.keys"] = "[x]\n";
    one_error(w, "k.keys:1: ", {"\"label = key\""});
    w.files.erase("k.keys");
    one_error(w, "p.conf:4: ", {"cannot read key file \"k.keys\": No such file or directory"});

    World e = conf(kLoop + "[target oa]\norigin = a\nkey-env = KEYS\n");
    one_error(e, "p.conf:4: ", {"KEYS", "is not set"});
    e.env["KEYS"] = " , ";
    one_error(e, "p.conf:4: ", {"KEYS", "is empty"});
    e.env["KEYS"] = "=k";
    one_error(e, "p.conf:4: ", {"empty label"});
    e.env["KEYS"] = "x=k1,x=k2";
    one_error(e, "p.conf:4: ", {"duplicate key label \"x\""});
    e.env["KEYS"] = "k1\tk2\nk3";
    CHECK(e.ok().routes[0].origins[0].keys.size() == 3);
    // The same labels on two origins (one key file for both) are fine.
    World two = conf(kLoop + "[target oa]\norigin = a\nkey-file = k\norigin = b\nkey-file = k\n");
    two.files["k"] = "x = k1\n";
    Config t = two.ok();
    CHECK(t.routes[0].origins[1].keys[0].label == "x");
    // No secret ever appears in a message.
    World s = conf(kLoop + "[target oa]\norigin = a\nkey = sk-secret\nkey = sk-secret\n");
    auto errors = s.errors();
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].find("sk-secret") == std::string::npos);
}

TEST_CASE("config file: access keys") {
    World w;
    w.files["a.keys"] = "alice = 0123456789abcdef\n";
    Config c = w.ok({"-access-keys", "a.keys"});
    REQUIRE(c.access_keys.size() == 1);
    CHECK(c.access_keys[0].label == "alice");
    w.env["OPENAI_PROXY_ACCESS_KEYS"] = "a.keys";
    CHECK(w.ok({}).access_keys.size() == 1);

    auto check = [&](const char* text, const char* prefix, std::initializer_list<const char*> needles) {
        World x;
        x.files["a.keys"] = text;
        auto errors = x.errors({"-access-keys", "a.keys"});
        REQUIRE(errors.size() == 1);
        INFO(errors[0]);
        CHECK(errors[0].rfind(prefix, 0) == 0);
        for (const char* n : needles) CHECK(errors[0].find(n) != std::string::npos);
        CHECK(errors[0].find("0123456789abcdef") == std::string::npos);  // never the key
    };
    check("alice = 0123456789abcdef\nalice = 0123456789abcdeX\n", "a.keys:2: ", {"duplicate label \"alice\"", "line 1"});
    check("alice = 0123456789abcdef\nbob = 0123456789abcdef\n", "a.keys:2: ", {"same as that of \"alice\""});
    check("\nalice =\n", "a.keys:2: ", {"empty key"});
    check("alice = 0123456789abcde\n", "a.keys:1: ", {"shorter than 16", "guessed"});
    check("0123456789abcdef\n", "a.keys:1: ", {"expected \"label = key\""});
    check("# none\n", "access keys file \"a.keys\" holds no key", {});
    World none;
    auto errors = none.errors({"-access-keys", "/no/file"});
    REQUIRE(errors.size() == 1);
    CHECK(errors[0] == "cannot read access keys file \"/no/file\": No such file or directory");
    // Named in the config file: its line is given.
    World f = conf("\naccess-keys = /no/file\n");
    one_error(f, "p.conf:2: ", {"cannot read access keys file \"/no/file\""});
}

TEST_CASE("config file: precedence file < environment < command line") {
    World w = conf("listen = 127.0.0.1:1\nworkers = 3\n[target oa]\norigin = file.example\nkey = k\n"
                   "[target keep]\norigin = keep.example\n");
    Config file = w.ok();
    CHECK(file.listen.port == 1);
    w.env["OPENAI_PROXY_LISTEN"] = "127.0.0.1:2";
    w.env["OPENAI_PROXY_WORKERS"] = "4";
    Config env = w.ok();
    CHECK(env.listen.port == 2);
    CHECK(env.workers == 4);
    Config flag = w.ok({"-config", "p.conf", "-listen", "127.0.0.1:3"});
    CHECK(flag.listen.port == 3);
    CHECK(flag.workers == 4);
    // A -targets / OPENAI_PROXY_TARGETS entry replaces the file's target of its name, in place.
    w.env["OPENAI_PROXY_TARGETS"] = "oa:env.example,new:new.example";
    Config t = w.ok();
    REQUIRE(t.routes.size() == 3);
    CHECK(t.routes[0].name == "oa");
    CHECK(t.routes[0].origins[0].target.host == "env.example");
    CHECK(t.routes[0].origins[0].keys.empty());
    CHECK(t.routes[1].name == "keep");
    CHECK(t.routes[2].name == "new");
    Config t2 = w.ok({"-config", "p.conf", "-targets", "oa:flag.example"});
    CHECK(t2.routes[0].origins[0].target.host == "flag.example");
    // The variable names the file when no flag does.
    World v = conf("workers = 5\n");
    v.env["OPENAI_PROXY_CONFIG"] = "p.conf";
    CHECK(v.ok({}).workers == 5);
    CHECK(v.ok({}).config_file == "p.conf");
    // -default-target beats [default].
    World d = conf("[default]\norigin = file.example\n");
    CHECK(d.ok({"-config", "p.conf", "-default-target", "flag.example"}).default_route->origins[0].target.host ==
          "flag.example");
    // A file that cannot be read.
    World missing;
    auto errors = missing.errors({"-config", "nope.conf"});
    REQUIRE(errors.size() == 1);
    CHECK(errors[0] == "cannot read configuration file \"nope.conf\": No such file or directory");
    // -check-config is a flag only.
    CHECK(conf("").parse({"-config", "p.conf", "-check-config"}).check_only);
    one_error(conf("check-config = true\n"), "p.conf:1: ", {"cannot be set in the configuration file"});
}

TEST_CASE("config file: the safe default") {
    const std::string keyed = "[target oa]\norigin = a\nkey = k\n";
    // Beyond loopback, keys and no access keys: refused, with the three ways out.
    for (const char* listen : {":9001", "0.0.0.0:9001", "[::]:9001", "192.168.1.2:9001", "127.example:1"}) {
        CAPTURE(listen);
        World w = conf(std::string("listen = ") + listen + "\n" + keyed);
        auto errors = w.errors();
        REQUIRE(errors.size() == 1);
        CHECK(errors[0].find("-access-keys") != std::string::npos);
        CHECK(errors[0].find("loopback") != std::string::npos);
        CHECK(errors[0].find("-allow-anonymous") != std::string::npos);
    }
    for (const char* listen : {"127.0.0.1:9001", "127.1.2.3:1", "[::1]:9001", "localhost:9001", "LocalHost:1"}) {
        CAPTURE(listen);
        conf(std::string("listen = ") + listen + "\n" + keyed).ok();
    }
    conf(keyed).ok({"-config", "p.conf", "-allow-anonymous"});
    conf("allow-anonymous = true\n" + keyed).ok();
    World a = conf("access-keys = a.keys\n" + keyed);
    a.files["a.keys"] = "u = 0123456789abcdef\n";
    a.ok();
    // No keys: nothing to protect.
    conf("[target oa]\norigin = a\n").ok();
    // Keys on the default target count too.
    CHECK(conf("[default]\norigin = a\nkey = k\n").errors().size() == 1);
}

TEST_CASE("config file: listen_is_loopback") {
    auto loop = [](const char* text) {
        op::ListenAddress a;
        std::string why;
        REQUIRE(op::parse_listen_address(text, a, why));
        return op::listen_is_loopback(a);
    };
    CHECK(loop("127.0.0.1:1"));
    CHECK(loop("[::1]:1"));
    CHECK(loop("localhost:1"));
    CHECK_FALSE(loop(":1"));
    CHECK_FALSE(loop("0.0.0.0:1"));
    CHECK_FALSE(loop("[::]:1"));
    CHECK_FALSE(loop("127.0.0.256:1"));
    CHECK_FALSE(loop("127.0.0:1"));
    CHECK_FALSE(loop("10.0.0.1:1"));
}
