#include "doctest/doctest.h"
#include "config.h"

#include <initializer_list>
#include <map>
#include <string>
#include <vector>

using op::Config;
using op::ConfigResult;
using op::parse_config;

namespace {
using Env = std::map<std::string, std::string>;

// Runs parse_config on "openai-proxy ARGS..." with `env` as the whole environment.
ConfigResult parse(const std::vector<const char*>& args, const Env& env = {}) {
    std::vector<const char*> argv{"openai-proxy"};
    argv.insert(argv.end(), args.begin(), args.end());
    op::EnvLookup lookup = [&env](const char* name) -> const char* {
        auto it = env.find(name);
        return it == env.end() ? nullptr : it->second.c_str();
    };
    return parse_config(static_cast<int>(argv.size()), argv.data(), lookup);
}

// Parses and requires success.
Config ok(const std::vector<const char*>& args, const Env& env = {}) {
    ConfigResult r = parse(args, env);
    for (const auto& e : r.errors) INFO("error: ", e);
    REQUIRE(r.errors.empty());
    CHECK_FALSE(r.show_help);
    CHECK_FALSE(r.show_version);
    return r.config;
}

// Parses and requires exactly one error, which contains each of `needles`.
std::string one_error(const std::vector<const char*>& args, std::initializer_list<const char*> needles,
                      const Env& env = {}) {
    ConfigResult r = parse(args, env);
    REQUIRE(r.errors.size() == 1);
    for (const char* n : needles) {
        INFO("error: ", r.errors[0], "; expected to contain: ", n);
        CHECK(r.errors[0].find(n) != std::string::npos);
    }
    CHECK(r.errors[0].find('\n') == std::string::npos);
    return r.errors[0];
}

std::string key_of(const Config& c, std::size_t i) { return c.routes.at(i).name; }
}  // namespace

TEST_CASE("config: defaults") {
    Config c = ok({});
    CHECK(c.listen.text == ":9001");
    CHECK(c.listen.host == "");
    CHECK(c.listen.port == 9001);
    CHECK(c.routes.empty());
    REQUIRE(c.default_route.has_value());
    CHECK(c.default_route->origins[0].target.tls);
    CHECK(c.default_route->origins[0].target.host == "api.openai.com");
    CHECK(c.default_route->origins[0].target.port == 443);
    CHECK(c.default_route->origins[0].target.authority == "api.openai.com");
    CHECK(c.ca_file.empty());
    CHECK_FALSE(c.upstream_proxy.has_value());
    CHECK_FALSE(c.local_mode);
    CHECK(c.buffer_size == 1024);
    CHECK(c.max_header_line == 16 * 1024);
    CHECK(ok({"-max-header-line", "4KiB"}).max_header_line == 4096);
    CHECK(c.pool_max_idle == 1024);
    CHECK(c.pool_max_idle_per_host == 512);
    CHECK(c.pool_idle_timeout.count() == 90);
    CHECK(c.connect_timeout.count() == 10);
    CHECK(c.workers == 0);
    CHECK(c.allow_hosts.empty());
    CHECK_FALSE(c.allow_private);
    CHECK_FALSE(c.disable_target_header);
}

TEST_CASE("config: every Go flag syntax") {
    const std::vector<std::vector<const char*>> syntaxes{
        {"-listen=:9000"}, {"-listen", ":9000"}, {"--listen=:9000"}, {"--listen", ":9000"}};
    for (const auto& args : syntaxes) {
        Config c = ok(args);
        CHECK(c.listen.port == 9000);
        CHECK(c.listen.host == "");
        CHECK(c.listen.text == ":9000");
    }
    // A value may contain '=' after the first one.
    CHECK(ok({"-ca-file=/a=b.pem"}).ca_file == "/a=b.pem");
    // A value may start with '-' when given separately.
    CHECK(ok({"-ca-file", "-odd.pem"}).ca_file == "-odd.pem");
    // The last of a repeated flag wins.
    CHECK(ok({"-listen=:1", "-listen=:2"}).listen.port == 2);
}

TEST_CASE("config: -tls-cert and -tls-key come together, from flags or the environment") {
    CHECK(ok({}).tls_cert.empty());
    Config c = ok({"-tls-cert", "/c.pem", "-tls-key", "/k.pem"});
    CHECK(c.tls_cert == "/c.pem");
    CHECK(c.tls_key == "/k.pem");
    c = ok({}, {{"OPENAI_PROXY_TLS_CERT", "/e.pem"}, {"OPENAI_PROXY_TLS_KEY", "/ek.pem"}});
    CHECK(c.tls_cert == "/e.pem");
    CHECK(c.tls_key == "/ek.pem");
    one_error({"-tls-cert", "/c.pem"}, {"-tls-cert needs -tls-key"});
    one_error({"-tls-key", "/k.pem"}, {"-tls-key needs -tls-cert"});
    one_error({}, {"-tls-key needs -tls-cert"}, {{"OPENAI_PROXY_TLS_KEY", "/ek.pem"}});
}

TEST_CASE("config: boolean flags") {
    CHECK(ok({"-allow-private"}).allow_private);
    CHECK(ok({"--allow-private"}).allow_private);
    CHECK_FALSE(ok({"-allow-private=false"}).allow_private);
    CHECK(ok({"-allow-private=true"}).allow_private);
    CHECK(ok({"--disable-target-header=true"}).disable_target_header);
    CHECK(ok({"-disable-target-header=1"}).disable_target_header);
    CHECK_FALSE(ok({"-disable-target-header=0"}).disable_target_header);
    // A boolean flag does not take the next argument as its value (Go's rule).
    ConfigResult r = parse({"-allow-private", "false"});
    CHECK(r.config.allow_private);
    CHECK(r.errors.size() == 1);
    one_error({"-allow-private=maybe"}, {"maybe", "allow-private"});
    one_error({"--disable-target-header=yes"}, {"yes", "disable-target-header"});
}

TEST_CASE("config: OPENAI_PROXY_LISTEN is used without the flag; the flag wins") {
    Config c = ok({}, {{"OPENAI_PROXY_LISTEN", "127.0.0.1:8000"}});
    CHECK(c.listen.host == "127.0.0.1");
    CHECK(c.listen.port == 8000);
    Config f = ok({"-listen", ":9000"}, {{"OPENAI_PROXY_LISTEN", "127.0.0.1:8000"}});
    CHECK(f.listen.host == "");
    CHECK(f.listen.port == 9000);
    // An empty variable counts as unset.
    CHECK(ok({}, {{"OPENAI_PROXY_LISTEN", ""}}).listen.port == 9001);
    // A bad env value is reported, naming the variable.
    one_error({}, {"OPENAI_PROXY_LISTEN", "nope"}, {{"OPENAI_PROXY_LISTEN", "nope"}});
    // A good flag hides a bad env value.
    CHECK(ok({"-listen=:9000"}, {{"OPENAI_PROXY_LISTEN", "nope"}}).listen.port == 9000);
}

TEST_CASE("config: targets from env and flag are merged, the flag wins on a key") {
    Config c = ok({"-targets=azure:x.openai.azure.com,oa:flag.example.com"},
                  {{"OPENAI_PROXY_TARGETS", "oa:api.openai.com,local:http://127.0.0.1:8080"}});
    REQUIRE(c.routes.size() == 3);
    std::map<std::string, op::Target> m;
    for (const op::Route& r : c.routes) m[r.name] = r.origins.at(0).target;
    REQUIRE(m.size() == 3);
    CHECK(m.at("oa").host == "flag.example.com");
    CHECK(m.at("azure").host == "x.openai.azure.com");
    CHECK(m.at("azure").tls);
    CHECK_FALSE(m.at("local").tls);
    CHECK(m.at("local").port == 8080);
    CHECK_FALSE(c.default_route.has_value());  // targets exist: no implicit default
}

TEST_CASE("config: a target entry is split at its first ':'") {
    Config c = ok({"-targets", "k:host:8443,s:https://h,p:http://h:8080,v6:[::1]:8443"});
    REQUIRE(c.routes.size() == 4);
    CHECK(key_of(c, 0) == "k");
    CHECK(c.routes[0].origins[0].target.host == "host");
    CHECK(c.routes[0].origins[0].target.port == 8443);
    CHECK(c.routes[0].origins[0].target.tls);
    CHECK(key_of(c, 1) == "s");
    CHECK(c.routes[1].origins[0].target.host == "h");
    CHECK(c.routes[1].origins[0].target.port == 443);
    CHECK(c.routes[1].origins[0].target.tls);
    CHECK(key_of(c, 2) == "p");
    CHECK_FALSE(c.routes[2].origins[0].target.tls);
    CHECK(c.routes[2].origins[0].target.port == 8080);
    CHECK(key_of(c, 3) == "v6");
    CHECK(c.routes[3].origins[0].target.host == "::1");
}

TEST_CASE("config: targets from the environment alone; spaces and empty entries are ignored") {
    Config c = ok({}, {{"OPENAI_PROXY_TARGETS", " oa:api.openai.com , ,azure:x.openai.azure.com,"}});
    REQUIRE(c.routes.size() == 2);
    CHECK(key_of(c, 0) == "oa");
    CHECK(c.routes[0].origins[0].target.host == "api.openai.com");
    CHECK(key_of(c, 1) == "azure");
    CHECK_FALSE(c.default_route.has_value());
}

TEST_CASE("config: the default target with targets, from flag or environment") {
    Config f = ok({"-targets=oa:api.openai.com", "-default-target=http://127.0.0.1:8080"});
    REQUIRE(f.default_route.has_value());
    CHECK_FALSE(f.default_route->origins[0].target.tls);
    CHECK(f.default_route->origins[0].target.port == 8080);

    Config e = ok({"-targets=oa:api.openai.com"}, {{"OPENAI_PROXY_DEFAULT_TARGET", "fallback.example.com"}});
    REQUIRE(e.default_route.has_value());
    CHECK(e.default_route->origins[0].target.host == "fallback.example.com");

    Config w = ok({"-default-target=flag.example.com"}, {{"OPENAI_PROXY_DEFAULT_TARGET", "env.example.com"}});
    REQUIRE(w.default_route.has_value());
    CHECK(w.default_route->origins[0].target.host == "flag.example.com");

    one_error({"-default-target=ftp://x"}, {"ftp://x", "default-target"});
}

TEST_CASE("config: each malformed target entry is one error naming it") {
    for (const char* entry : {"nocolon", ":h", "k:", "k:ftp://x", "bad key:h", "k:https://h/v1", "k:h:0"}) {
        std::string arg = std::string("-targets=") + entry;
        INFO("entry: ", entry);
        one_error({arg.c_str()}, {(std::string("\"") + entry + "\"").c_str()});
    }
    one_error({}, {"\"nocolon\"", "OPENAI_PROXY_TARGETS"}, {{"OPENAI_PROXY_TARGETS", "oa:api.openai.com,nocolon"}});
}

TEST_CASE("config: several errors are all reported at once") {
    ConfigResult r = parse({"-targets=nocolon,ok:api.openai.com,k:ftp://x", "-nope", "-listen=9000",
                            "-buffer-size=0", "stray"},
                           {{"OPENAI_PROXY_TARGETS", ":h"}});
    CHECK(r.errors.size() == 7);
    auto has = [&r](const char* needle) {
        for (const auto& e : r.errors)
            if (e.find(needle) != std::string::npos) return true;
        return false;
    };
    CHECK(has("\"nocolon\""));
    CHECK(has("\"k:ftp://x\""));
    CHECK(has("\":h\""));
    CHECK(has("unknown flag: -nope"));
    CHECK(has("\"9000\""));
    CHECK(has("buffer-size"));
    CHECK(has("stray"));
    // The good entry is still kept.
    REQUIRE(r.config.routes.size() == 1);
    CHECK(r.config.routes[0].name == "ok");
}

TEST_CASE("config: unknown flags, missing values and positional arguments") {
    CHECK(one_error({"-nope"}, {}) == "unknown flag: -nope");
    CHECK(one_error({"--nope=1"}, {}) == "unknown flag: -nope");
    one_error({"-listen"}, {"-listen"});
    one_error({"-targets"}, {"-targets"});
    one_error({"serve"}, {"serve"});
    one_error({"-listen=:9000", "--", "extra"}, {"extra"});
    CHECK(ok({"-listen=:9000", "--"}).listen.port == 9000);
}

TEST_CASE("config: help and version") {
    for (const char* h : {"-h", "-help", "--help", "--h"}) {
        INFO(h);
        ConfigResult r = parse({h});
        CHECK(r.show_help);
        CHECK_FALSE(r.show_version);
        CHECK(r.errors.empty());
    }
    for (const char* v : {"--version", "-version"}) {
        INFO(v);
        ConfigResult r = parse({v});
        CHECK(r.show_version);
        CHECK_FALSE(r.show_help);
        CHECK(r.errors.empty());
    }
}

TEST_CASE("config: listen addresses") {
    struct Case {
        const char* text;
        const char* host;
        int port;
    };
    for (Case k : {Case{":9000", "", 9000}, Case{"0.0.0.0:9000", "0.0.0.0", 9000}, Case{"127.0.0.1:0", "127.0.0.1", 0},
                   Case{"[::]:9001", "::", 9001}, Case{"[::1]:9001", "::1", 9001},
                   Case{"localhost:9001", "localhost", 9001}, Case{":65535", "", 65535}}) {
        INFO("listen: ", k.text);
        Config c = ok({"-listen", k.text});
        CHECK(c.listen.host == k.host);
        CHECK(c.listen.port == k.port);
        CHECK(c.listen.text == k.text);
    }
    for (const char* bad : {"9000", "::1:9000", ":99999", ":65536", "[::1]", "a b:1", "", ":", "host:", "[::1]9001",
                            "[127.0.0.1]:9001", ":-1", ":90a"}) {
        INFO("listen: \"", bad, "\"");
        std::string arg = std::string("-listen=") + bad;
        one_error({arg.c_str()}, {"listen"});
    }
}

TEST_CASE("config: durations") {
    struct Case {
        const char* text;
        long seconds;
    };
    for (Case k : {Case{"90", 90}, Case{"90s", 90}, Case{"2m", 120}, Case{"1m30s", 90}, Case{"500ms", 1},
                   Case{"1500ms", 2}, Case{"1h", 3600}, Case{"1h30m", 5400}, Case{"1", 1}, Case{"1.5s", 2}, Case{"0.5m", 30}}) {
        INFO("duration: ", k.text);
        CHECK(ok({"-pool-idle-timeout", k.text}).pool_idle_timeout.count() == k.seconds);
        CHECK(ok({"-connect-timeout", k.text}).connect_timeout.count() == k.seconds);
    }
    for (const char* bad : {"abc", "-5s", "0s", "0", "", "s", "5x", "1m30", "5 s", "1d", "1.5.5s", ".s", "1..s", "5S"}) {
        INFO("duration: \"", bad, "\"");
        std::string arg = std::string("-connect-timeout=") + bad;
        one_error({arg.c_str()}, {"connect-timeout"});
    }
    // Zero is allowed where it means "no wait".
    CHECK(ok({"-shutdown-grace=0s"}).shutdown_grace.count() == 0);
    one_error({"-shutdown-grace=abc"}, {"shutdown-grace"});
}

TEST_CASE("config: -cors-origins, flag and environment") {
    CHECK_FALSE(ok({}).cors.enabled);
    Config c = ok({"-cors-origins", "https://App.Example.com:443, http://localhost:5173"});
    CHECK(c.cors.enabled);
    CHECK_FALSE(c.cors.any_origin);
    CHECK(c.cors.origins == std::vector<std::string>{"https://app.example.com", "http://localhost:5173"});
    Config star = ok({}, {{"OPENAI_PROXY_CORS_ORIGINS", "*"}});
    CHECK(star.cors.enabled);
    CHECK(star.cors.any_origin);
    // The flag wins over the environment.
    CHECK(ok({"-cors-origins=http://a.test"}, {{"OPENAI_PROXY_CORS_ORIGINS", "*"}}).cors.origins.size() == 1);
    one_error({"-cors-origins", "https://a.test/"}, {"-cors-origins", "https://a.test/", "no path"});
    one_error({}, {"OPENAI_PROXY_CORS_ORIGINS", "scheme://host"}, {{"OPENAI_PROXY_CORS_ORIGINS", "a.test"}});
}

TEST_CASE("config: keep-alive periods keep milliseconds") {
    Config c = ok({});
    CHECK(c.sse_keepalive.count() == 0);
    CHECK(c.json_keepalive.count() == 0);
    CHECK(ok({"-sse-keepalive", "200ms"}).sse_keepalive.count() == 200);
    CHECK(ok({"-sse-keepalive", "30s"}).sse_keepalive.count() == 30000);
    CHECK(ok({"-sse-keepalive", "15"}).sse_keepalive.count() == 15000);
    CHECK(ok({"-json-keepalive", "1m30s"}).json_keepalive.count() == 90000);
    CHECK(ok({"-json-keepalive", "0"}).json_keepalive.count() == 0);
    for (const char* bad : {"5ms", "abc", "-1s", ""}) {
        INFO("period: \"", bad, "\"");
        std::string arg = std::string("-sse-keepalive=") + bad;
        one_error({arg.c_str()}, {"sse-keepalive", "at least 10ms"});
    }
}

TEST_CASE("config: sizes and counts") {
    CHECK(ok({}).max_body_bytes == (512ull << 20));  // OpenAI takes files of 512 MB
    CHECK(ok({"-max-body-size", "100MiB"}).max_body_bytes == 104857600ull);
    CHECK(ok({"-max-body-size", "1g"}).max_body_bytes == 1073741824ull);
    CHECK(ok({"-max-body-size", "64k"}).max_body_bytes == 65536ull);
    CHECK(ok({"-max-body-size", "64KB"}).max_body_bytes == 65536ull);
    CHECK(ok({"-max-body-size", "12345"}).max_body_bytes == 12345ull);
    CHECK(ok({"-buffer-size", "16384"}).buffer_size == 16384);
    CHECK(ok({"-buffer-size", "16k"}).buffer_size == 16384);
    CHECK(ok({"-pool-max-idle", "0"}).pool_max_idle == 0);
    CHECK(ok({"-pool-max-idle-per-host", "5"}).pool_max_idle_per_host == 5);
    CHECK(ok({"-workers", "4"}).workers == 4);
    CHECK(ok({}, {{"OPENAI_PROXY_WORKERS", "3"}}).workers == 3);
    one_error({"-buffer-size", "0"}, {"buffer-size", "\"0\""});
    one_error({"-buffer-size", "-1"}, {"buffer-size"});
    one_error({"-buffer-size", "1x"}, {"buffer-size"});
    one_error({"-max-body-size", "12tb"}, {"max-body-size"});
    one_error({"-workers", "100000"}, {"workers"});
}

TEST_CASE("config: local mode takes the upstream proxy from HTTP_PROXY, then http_proxy") {
    Config d = ok({}, {{"ENV", "local"}});
    CHECK(d.local_mode);
    REQUIRE(d.upstream_proxy.has_value());
    CHECK_FALSE(d.upstream_proxy->proxy.tls);
    CHECK(d.upstream_proxy->proxy.host == "127.0.0.1");
    CHECK(d.upstream_proxy->proxy.port == 10809);

    Config a = ok({}, {{"ENV", "local"}, {"HTTP_PROXY", "http://a.example:3128"}, {"http_proxy", "http://b.example:1"}});
    REQUIRE(a.upstream_proxy.has_value());
    CHECK(a.upstream_proxy->proxy.host == "a.example");
    CHECK(a.upstream_proxy->proxy.port == 3128);

    Config b = ok({}, {{"ENV", "local"}, {"http_proxy", "http://b.example:8888"}});
    REQUIRE(b.upstream_proxy.has_value());
    CHECK(b.upstream_proxy->proxy.host == "b.example");
    CHECK(b.upstream_proxy->proxy.port == 8888);

    Config bare = ok({}, {{"ENV", "local"}, {"HTTP_PROXY", "proxy.lan:8080"}});  // scheme optional
    REQUIRE(bare.upstream_proxy.has_value());
    CHECK_FALSE(bare.upstream_proxy->proxy.tls);
    CHECK(bare.upstream_proxy->proxy.host == "proxy.lan");
    CHECK(bare.upstream_proxy->proxy.port == 8080);

    Config flag = ok({"-upstream-proxy", "http://p:3128"}, {{"ENV", "local"}, {"HTTP_PROXY", "http://a.example:1"}});
    CHECK(flag.local_mode);
    REQUIRE(flag.upstream_proxy.has_value());
    CHECK(flag.upstream_proxy->proxy.host == "p");
    CHECK(flag.upstream_proxy->proxy.port == 3128);

    one_error({}, {"HTTP_PROXY", "https://p"}, {{"ENV", "local"}, {"HTTP_PROXY", "https://p"}});
    // HTTP_PROXY stays http only (other programs read it too); -upstream-proxy takes SOCKS.
    one_error({}, {"HTTP_PROXY", "only http://"}, {{"ENV", "local"}, {"HTTP_PROXY", "socks5://p"}});
    one_error({}, {"HTTP_PROXY", "only http://"}, {{"ENV", "local"}, {"HTTP_PROXY", "direct"}});
    // -upstream-proxy direct in local mode: no proxy at all, HTTP_PROXY not consulted.
    CHECK_FALSE(ok({"-upstream-proxy=direct"}, {{"ENV", "local"}, {"HTTP_PROXY", "http://a:1"}}).upstream_proxy.has_value());
    // The message names the variable the value came from.
    std::string e = one_error({}, {"http_proxy", "99999"}, {{"ENV", "local"}, {"http_proxy", "http://u@p:99999"}});
    CHECK(e.find("HTTP_PROXY") == std::string::npos);
}

TEST_CASE("config: without ENV=local, HTTP_PROXY is ignored") {
    for (const char* mode : {"", "prod", "LOCAL"}) {
        INFO("ENV=", mode);
        Config c = ok({}, {{"ENV", mode}, {"HTTP_PROXY", "http://a.example:3128"}});
        CHECK_FALSE(c.local_mode);
        CHECK_FALSE(c.upstream_proxy.has_value());
    }
    Config flag = ok({"-upstream-proxy=p:3128"});
    CHECK_FALSE(flag.local_mode);
    REQUIRE(flag.upstream_proxy.has_value());
    CHECK_FALSE(flag.upstream_proxy->proxy.tls);
    CHECK(flag.upstream_proxy->proxy.host == "p");
    CHECK(flag.upstream_proxy->proxy.port == 3128);
    one_error({"-upstream-proxy", "https://p"}, {"upstream-proxy", "https://p"});
    Config socks = ok({"-upstream-proxy=socks5h://u:p@s:1081"});
    REQUIRE(socks.upstream_proxy.has_value());
    CHECK(socks.upstream_proxy->kind == op::Egress::Kind::Socks5h);
    CHECK(socks.upstream_proxy->proxy.port == 1081);
    CHECK(socks.upstream_proxy->user == "u");
    CHECK(ok({}, {{"OPENAI_PROXY_UPSTREAM_PROXY", "socks5://s"}}).upstream_proxy->kind == op::Egress::Kind::Socks5);
    one_error({"-upstream-proxy", "socks4://p:1080"}, {"upstream-proxy", "socks4"});
    // The password of a refused proxy URL is not echoed.
    std::string e = one_error({"-upstream-proxy", "socks4://u:sekret@p"}, {"upstream-proxy", "u:***@p"});
    CHECK(e.find("sekret") == std::string::npos);
    e = one_error({}, {"HTTP_PROXY"}, {{"ENV", "local"}, {"HTTP_PROXY", "socks5://u:sekret@p"}});
    CHECK(e.find("sekret") == std::string::npos);
    CHECK_FALSE(ok({"-upstream-proxy=direct"}).upstream_proxy.has_value());
}

TEST_CASE("config: -allow-hosts") {
    Config c = ok({"-allow-hosts", "a.com,*.b.com"});
    REQUIRE(c.allow_hosts.size() == 2);
    CHECK(c.allow_hosts[0] == "a.com");
    CHECK(c.allow_hosts[1] == "*.b.com");
    CHECK(ok({"-allow-hosts= a.com , ,b.com"}).allow_hosts.size() == 2);
    for (const char* bad : {"*.", "a/b", "*", "a.*.com", "a.com:443", "a b"}) {
        INFO("allow-hosts: \"", bad, "\"");
        std::string arg = std::string("-allow-hosts=") + bad;
        one_error({arg.c_str()}, {"allow-hosts"});
    }
}

TEST_CASE("config: usage_text lists every option with its default") {
    std::string u = op::usage_text("openai-proxy");
    CHECK(u.find("openai-proxy") != std::string::npos);
    // Each option's entry runs from "  -name" to the next "\n  -".
    auto entry = [&u](const std::string& name) -> std::string {
        std::size_t at = u.find("  -" + name + " ");
        if (at == std::string::npos) at = u.find("  -" + name + "\n");
        if (at == std::string::npos) return {};
        std::size_t end = u.find("\n  -", at + 1);
        return u.substr(at, end == std::string::npos ? std::string::npos : end - at);
    };
    struct Opt {
        const char* name;
        const char* default_text;  // nullptr: no default
        const char* env;           // nullptr: no env
    };
    for (Opt o : {Opt{"listen", ":9001", "OPENAI_PROXY_LISTEN"}, Opt{"targets", nullptr, "OPENAI_PROXY_TARGETS"},
                  Opt{"default-target", "api.openai.com", "OPENAI_PROXY_DEFAULT_TARGET"},
                  Opt{"ca-file", "", nullptr}, Opt{"upstream-proxy", "", nullptr}, Opt{"workers", "0", nullptr},
                  Opt{"buffer-size", "1024", nullptr}, Opt{"pool-max-idle", "1024", nullptr},
                  Opt{"pool-max-idle-per-host", "512", nullptr}, Opt{"pool-idle-timeout", "90s", nullptr},
                  Opt{"connect-timeout", "10s", nullptr}, Opt{"tls-timeout", "", nullptr},
                  Opt{"response-timeout", "", nullptr}, Opt{"idle-timeout", "", nullptr},
                  Opt{"header-timeout", "", nullptr}, Opt{"keepalive-timeout", "", nullptr},
                  Opt{"shutdown-grace", "", nullptr}, Opt{"max-connections", "", nullptr},
                  Opt{"max-body-size", "", nullptr}, Opt{"max-header-size", "", nullptr},
                  Opt{"max-request-line", "", nullptr}, Opt{"max-header-count", "", nullptr},
                  Opt{"allow-hosts", "", nullptr}, Opt{"allow-private", "false", nullptr},
                  Opt{"disable-target-header", "false", nullptr},
                  Opt{"cors-origins", "off", "OPENAI_PROXY_CORS_ORIGINS"}, Opt{"sse-keepalive", "0", nullptr},
                  Opt{"json-keepalive", "0", nullptr}}) {
        INFO("option -", o.name);
        std::string e = entry(o.name);
        REQUIRE_FALSE(e.empty());
        if (o.default_text) CHECK(e.find(std::string("(default ") + o.default_text) != std::string::npos);
        if (o.env) CHECK(e.find(o.env) != std::string::npos);
    }
    CHECK(u.find("--help") != std::string::npos);
    CHECK(u.find("--version") != std::string::npos);
    CHECK(u.find("ENV=local") != std::string::npos);
    CHECK(u.find("HTTP_PROXY") != std::string::npos);
}

TEST_CASE("config: every option in usage_text is accepted by the parser") {
    std::string u = op::usage_text("openai-proxy");
    std::size_t pos = 0;
    int seen = 0;
    while ((pos = u.find("\n  -", pos)) != std::string::npos) {
        pos += 4;
        std::size_t end = u.find_first_of(" ,\n", pos);
        std::string name = u.substr(pos, end - pos);
        if (name.empty() || name[0] == '-' || name == "h") continue;  // --help, --version, -h
        INFO("option -", name);
        ConfigResult r = parse({("-" + name).c_str()});
        for (const auto& e : r.errors) CHECK(e.find("unknown flag") == std::string::npos);
        ++seen;
    }
    CHECK(seen >= 25);
}

TEST_CASE("config: version_text") {
    std::string v = op::version_text();
    CHECK(v.rfind("openai-proxy ", 0) == 0);
    CHECK(v.size() > std::string("openai-proxy ").size());
}

TEST_CASE("config: the upstream proxy must be http://, socks5:// or socks5h://, whatever the other scheme") {
    for (const char* bad : {"https://p:3128", "socks4://p:1080", "HTTPS://p", "ftp://p"}) {
        INFO("proxy: ", bad);
        std::string arg = std::string("-upstream-proxy=") + bad;
        one_error({arg.c_str()}, {"upstream-proxy", bad, "use http://, socks5://, socks5h:// or direct"});
    }
    one_error({}, {"OPENAI_PROXY_UPSTREAM_PROXY", "unsupported"}, {{"OPENAI_PROXY_UPSTREAM_PROXY", "socks4://p"}});
    one_error({"-upstream-proxy=http://p/path"}, {"upstream-proxy", "path"});
    Config env = ok({}, {{"OPENAI_PROXY_UPSTREAM_PROXY", "HTTP://P:8080/"}});
    REQUIRE(env.upstream_proxy.has_value());
    CHECK(env.upstream_proxy->proxy.host == "p");
    CHECK(env.upstream_proxy->proxy.port == 8080);
    CHECK(ok({"-upstream-proxy=http://p"}).upstream_proxy->proxy.port == 80);
}

TEST_CASE("config: in local mode a refused -upstream-proxy is one error, not a fallback to HTTP_PROXY") {
    std::string e = one_error({"-upstream-proxy=socks4://p"}, {"upstream-proxy"},
                              {{"ENV", "local"}, {"HTTP_PROXY", "also bad"}});
    CHECK(e.find("HTTP_PROXY") == std::string::npos);
    one_error({}, {"OPENAI_PROXY_UPSTREAM_PROXY"},
              {{"ENV", "local"}, {"OPENAI_PROXY_UPSTREAM_PROXY", "https://p"}, {"HTTP_PROXY", "also bad"}});
    // The variable, when set, takes the place of HTTP_PROXY as the flag does.
    Config c = ok({}, {{"ENV", "local"}, {"OPENAI_PROXY_UPSTREAM_PROXY", "http://v:1"}, {"HTTP_PROXY", "http://h:2"}});
    REQUIRE(c.upstream_proxy.has_value());
    CHECK(c.upstream_proxy->proxy.host == "v");
}

TEST_CASE("config: upstream proxy credentials become a Basic Proxy-Authorization value") {
    const char* argv[] = {"openai-proxy", "-upstream-proxy", "http://user:p%40ss@127.0.0.1:3128"};
    op::ConfigResult r = op::parse_config(3, argv, [](const char*) -> const char* { return nullptr; });
    REQUIRE(r.errors.empty());
    REQUIRE(r.config.upstream_proxy.has_value());
    CHECK(r.config.upstream_proxy->proxy.host == "127.0.0.1");
    CHECK(r.config.upstream_proxy->proxy.port == 3128);
    CHECK(r.config.upstream_proxy->authorization == "Basic dXNlcjpwQHNz");  // base64("user:p@ss"): decoded

    const char* plain[] = {"openai-proxy", "-upstream-proxy", "127.0.0.1:3128"};
    op::ConfigResult q = op::parse_config(3, plain, [](const char*) -> const char* { return nullptr; });
    REQUIRE(q.errors.empty());
    CHECK(q.config.upstream_proxy->authorization.empty());
}

TEST_CASE("config: -admin-listen and -access-log, off by default, from flag or environment") {
    Config d = ok({});
    CHECK_FALSE(d.admin_listen.has_value());
    CHECK(d.access_log.empty());
    Config f = ok({"-admin-listen", "127.0.0.1:9002", "-access-log=-"});
    REQUIRE(f.admin_listen.has_value());
    CHECK(f.admin_listen->host == "127.0.0.1");
    CHECK(f.admin_listen->port == 9002);
    CHECK(f.access_log == "-");
    Config e = ok({}, {{"OPENAI_PROXY_ADMIN_LISTEN", "[::1]:9003"}, {"OPENAI_PROXY_ACCESS_LOG", "/var/log/x.json"}});
    REQUIRE(e.admin_listen.has_value());
    CHECK(e.admin_listen->host == "::1");
    CHECK(e.admin_listen->port == 9003);
    CHECK(e.access_log == "/var/log/x.json");
    CHECK(ok({"-admin-listen=:9004"}, {{"OPENAI_PROXY_ADMIN_LISTEN", "nope"}}).admin_listen->port == 9004);
    one_error({"-admin-listen", "nope"}, {"-admin-listen", "nope"});
    one_error({"-access-log="}, {"-access-log"});
}
