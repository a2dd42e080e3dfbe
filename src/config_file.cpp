#include "config_file.h"

#include <cctype>

#include "http_chars.h"
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>

namespace op {

using http_chars::lower_copy;

namespace {

// Calls fn(line_number, line) for each line of `text` (without its '\n'), from 1.
template <typename Fn>
void for_each_line(std::string_view text, Fn fn) {
    int line = 0;
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t nl = text.find('\n', pos);
        std::string_view raw = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        pos = nl == std::string_view::npos ? text.size() : nl + 1;
        fn(++line, raw);
    }
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

std::string at(const std::string& file, int line) { return file + ":" + std::to_string(line) + ": "; }

enum class LineKind { Blank, Section, Setting, Bare, Bad };

// One line of any of the three formats: comment removed ('#' outside double quotes),
// then "[section]", "name = value" (a value in double quotes keeps '#' and outer
// spaces), or a bare word (a key file's "key").
LineKind lex_line(std::string_view raw, std::string& name, std::string& value, std::string& why) {
    bool quoted = false;
    std::size_t end = raw.size();
    for (std::size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] == '"') quoted = !quoted;
        else if (raw[i] == '#' && !quoted) {
            end = i;
            break;
        }
    }
    std::string_view s = trim(raw.substr(0, end));
    if (s.empty()) return LineKind::Blank;
    if (quoted) {
        why = "unclosed quote";
        return LineKind::Bad;
    }
    if (s.front() == '[') {
        if (s.back() != ']') {
            why = "a section line must end with ]";
            return LineKind::Bad;
        }
        name = std::string(trim(s.substr(1, s.size() - 2)));
        return LineKind::Section;
    }
    auto unquote = [&why](std::string_view v, std::string& out) {
        if (!v.empty() && v.front() == '"') {
            if (v.size() < 2 || v.back() != '"' || v.substr(1, v.size() - 2).find('"') != std::string_view::npos) {
                why = "a quoted value must be one \"...\" with nothing after it";
                return false;
            }
            v = v.substr(1, v.size() - 2);
        } else if (v.find('"') != std::string_view::npos) {
            why = "a quote may only surround a whole value";
            return false;
        }
        out = std::string(v);
        return true;
    };
    std::size_t eq = std::string_view::npos;
    for (std::size_t i = 0, q = 0; i < s.size(); ++i) {
        if (s[i] == '"') q ^= 1;
        else if (s[i] == '=' && !q) {
            eq = i;
            break;
        }
    }
    if (eq == std::string_view::npos) {
        if (!unquote(s, value)) return LineKind::Bad;
        return LineKind::Bare;
    }
    name = std::string(trim(s.substr(0, eq)));
    if (!unquote(trim(s.substr(eq + 1)), value)) return LineKind::Bad;
    return LineKind::Setting;
}

bool valid_name(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
    return true;
}

// What logs show: printable, no spaces or quotes.
bool valid_label(std::string_view s, std::string& why) {
    if (s.empty()) {
        why = "empty label";
        return false;
    }
    if (s.size() > 64) {
        why = "label \"" + std::string(s.substr(0, 64)) + "...\" is longer than 64 characters";
        return false;
    }
    for (char c : s) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && !std::strchr("-_.@:+#/", c)) {
            why = "label \"" + std::string(s) + "\" may only hold letters, digits and - _ . @ : + # /";
            return false;
        }
    }
    return true;
}

// A secret sent in a header: printable ASCII without spaces. Never quoted in a message.
bool valid_secret(std::string_view s, std::string& why) {
    if (s.empty()) {
        why = "empty key";
        return false;
    }
    for (char c : s) {
        if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
            why = "the key holds a space, a control character or a non-ASCII byte";
            return false;
        }
    }
    return true;
}

// The keys of one route while it is built: labels unique per origin, numbering per route.
struct KeyBuilder {
    KeyBuilder(std::string label, std::vector<std::string>& errs) : route_label(std::move(label)), errors(errs) {}
    std::string route_label;  // "oa", or "default"
    std::vector<std::string>& errors;
    unsigned count = 0;  // keys of the route so far
    // label -> where, and secret -> label, of the current origin
    std::map<std::string, std::string> labels;
    std::map<std::string, std::string> secrets;

    void new_origin() {
        labels.clear();
        secrets.clear();
    }
    // `where` is "file:line: ".
    void add(Origin& origin, std::string label, std::string secret, const std::string& where) {
        ++count;
        if (label.empty()) label = route_label + "#" + std::to_string(count);
        std::string why;
        if (!valid_label(label, why)) {
            errors.push_back(where + why);
            return;
        }
        if (!valid_secret(secret, why)) {
            errors.push_back(where + why + " (label \"" + label + "\")");
            return;
        }
        if (auto it = labels.find(label); it != labels.end()) {
            errors.push_back(where + "duplicate key label \"" + label + "\" in this origin (first at " +
                             it->second.substr(0, it->second.size() - 2) + ")");
            return;
        }
        if (auto it = secrets.find(secret); it != secrets.end()) {
            errors.push_back(where + "key \"" + label + "\" is the same key as \"" + it->second +
                             "\" of this origin");
            return;
        }
        labels.emplace(label, where);
        secrets.emplace(secret, label);
        origin.keys.push_back(ApiKey{std::move(label), std::move(secret)});
    }
};

void load_key_file(const std::string& path, const std::string& where, const ReadFile& read, Origin& origin,
                   KeyBuilder& keys, std::vector<std::string>& errors) {
    std::string text, why;
    if (!read(path, text, why)) {
        errors.push_back(where + "cannot read key file \"" + path + "\": " + why);
        return;
    }
    std::size_t before = origin.keys.size();
    std::size_t errors_before = errors.size();
    for_each_line(text, [&](int line, std::string_view raw) {
        std::string name, value;
        switch (lex_line(raw, name, value, why)) {
            case LineKind::Blank: break;
            case LineKind::Bad: errors.push_back(at(path, line) + why); break;
            case LineKind::Section: errors.push_back(at(path, line) + "a key file holds \"key\" or \"label = key\" lines"); break;
            case LineKind::Bare: keys.add(origin, "", value, at(path, line)); break;
            case LineKind::Setting:
                if (name.empty()) errors.push_back(at(path, line) + "empty label before =");
                else keys.add(origin, name, value, at(path, line));
                break;
        }
    });
    if (origin.keys.size() == before && errors.size() == errors_before)
        errors.push_back(where + "key file \"" + path + "\" holds no key");
}

void load_key_env(const std::string& var, const std::string& where, const EnvLookup& env, Origin& origin,
                  KeyBuilder& keys, std::vector<std::string>& errors) {
    const char* v = var.empty() ? nullptr : env(var.c_str());
    if (var.empty()) {
        errors.push_back(where + "key-env needs the name of an environment variable");
        return;
    }
    if (!v) {
        errors.push_back(where + "environment variable " + var + " (key-env) is not set");
        return;
    }
    std::string_view list = v;
    bool any = false;
    while (!list.empty()) {
        std::size_t sep = list.find_first_of(", \t\r\n");
        std::string_view item = list.substr(0, sep);
        list = sep == std::string_view::npos ? std::string_view() : list.substr(sep + 1);
        if (item.empty()) continue;
        any = true;
        std::size_t eq = item.find('=');
        if (eq == std::string_view::npos) keys.add(origin, "", std::string(item), where);
        else if (eq == 0) errors.push_back(where + "an item of " + var + " has an empty label before =");
        else keys.add(origin, std::string(item.substr(0, eq)), std::string(item.substr(eq + 1)), where);
    }
    if (!any) errors.push_back(where + "environment variable " + var + " (key-env) is empty");
}

}  // namespace

ConfigFileText split_config_file(std::string_view text, const std::string& file, std::vector<std::string>& errors) {
    ConfigFileText out;
    ConfigSection discarded;  // settings of a section that was refused
    ConfigSection* current = nullptr;
    bool in_section = false;
    std::map<std::string, int> seen;  // target name ("" = [default]) -> line
    for_each_line(text, [&](int line, std::string_view raw) {
        std::string name, value, why;
        LineKind kind = lex_line(raw, name, value, why);
        if (kind == LineKind::Blank) return;
        if (kind == LineKind::Bad) {
            errors.push_back(at(file, line) + why);
            return;
        }
        if (kind == LineKind::Bare) {
            errors.push_back(at(file, line) + "expected \"name = value\" or a [section]");
            return;
        }
        if (kind == LineKind::Section) {
            in_section = true;
            ConfigSection s;
            s.line = line;
            std::string_view inner = name;
            bool ok = true;
            if (lower_copy(inner) == "default") {
                s.is_default = true;
            } else if (inner.size() > 7 && lower_copy(inner.substr(0, 7)) == "target " &&
                       valid_name(trim(inner.substr(7)))) {
                s.name = lower_copy(trim(inner.substr(7)));
            } else if (lower_copy(inner.substr(0, 6)) == "target") {
                errors.push_back(at(file, line) + "[" + name +
                                 "]: a target name is letters, digits, '-' or '_', as in [target oa]");
                ok = false;
            } else {
                errors.push_back(at(file, line) + "unknown section [" + name + "]: expected [target NAME] or [default]");
                ok = false;
            }
            if (ok) {
                auto [it, fresh] = seen.emplace(s.name, line);
                if (!fresh) {
                    errors.push_back(at(file, line) +
                                     (s.is_default ? std::string("[default] is already defined")
                                                   : "target \"" + s.name + "\" is already defined") +
                                     " at line " + std::to_string(it->second));
                    ok = false;
                }
            }
            if (ok) {
                out.sections.push_back(std::move(s));
                current = &out.sections.back();
            } else {
                discarded = ConfigSection{};
                current = &discarded;
            }
            return;
        }
        if (!valid_name(name)) {
            errors.push_back(at(file, line) + (name.empty() ? std::string("a setting needs a name before =")
                                                             : "\"" + name + "\" is not a setting name"));
            return;
        }
        ConfigSetting setting{line, name, value};
        if (in_section) current->settings.push_back(std::move(setting));
        else out.top.push_back(std::move(setting));
    });
    return out;
}

bool build_route(const ConfigSection& section, const std::string& file, const EnvLookup& env, const ReadFile& read,
                 Route& out, std::vector<std::string>& errors) {
    const std::size_t errors_before = errors.size();
    Route r;
    r.name = section.name;
    const std::string title = section.is_default ? "[default]" : "[target " + section.name + "]";
    KeyBuilder keys(section.is_default ? std::string("default") : section.name, errors);
    std::map<std::string, int> once;  // route settings given once: name -> line
    int origin_line = 0;
    bool origin_has_egress = false;
    for (const ConfigSetting& s : section.settings) {
        const std::string where = at(file, s.line);
        const std::string& v = s.value;
        auto bad = [&](const std::string& why) {
            // An egress URL's password and a key are secrets: never echoed.
            std::string shown = s.name == "egress" ? without_password(v) : s.name == "key" ? "(the key)" : v;
            errors.push_back(where + "invalid value \"" + shown + "\" for " + s.name + ": " + why);
        };
        if (s.name == "origin") {
            Target t;
            std::string why;
            if (!parse_target(v, t, why)) bad(why);
            if (r.origins.size() == kMaxOrigins)
                errors.push_back(where + title + " has more than " + std::to_string(kMaxOrigins) + " origins");
            r.origins.push_back(Origin{std::move(t), std::nullopt, {}});
            origin_line = s.line;
            origin_has_egress = false;
            keys.new_origin();
            continue;
        }
        if (s.name == "key" || s.name == "key-env" || s.name == "key-file" || s.name == "egress") {
            if (!origin_line) {
                errors.push_back(where + s.name + " before any origin line in " + title +
                                 ": it applies to the origin above it");
                continue;
            }
            Origin& o = r.origins.back();
            if (s.name == "key") {
                keys.add(o, "", v, where);
            } else if (s.name == "key-env") {
                load_key_env(v, where, env, o, keys, errors);
            } else if (s.name == "key-file") {
                if (v.empty()) errors.push_back(where + "key-file needs a path");
                else load_key_file(v, where, read, o, keys, errors);
            } else {
                if (origin_has_egress) {
                    errors.push_back(where + "this origin already has an egress");
                    continue;
                }
                origin_has_egress = true;
                Egress e;
                std::string why;
                if (!parse_egress(v, e, why)) bad(why);
                else o.egress = std::move(e);
            }
            continue;
        }
        static const char* const kRouteSettings[] = {"key-header", "attempts", "retry-on", "retry-body-limit",
                                                     "head-timeout"};
        bool known = false;
        for (const char* n : kRouteSettings) known = known || s.name == n;
        if (!known) {
            errors.push_back(where + "unknown setting \"" + s.name + "\" in " + title +
                             " (top-level settings go before the first [section])");
            continue;
        }
        if (auto [it, fresh] = once.emplace(s.name, s.line); !fresh) {
            errors.push_back(where + s.name + " is already set at line " + std::to_string(it->second));
            continue;
        }
        if (s.name == "key-header") {
            std::string h = lower_copy(v);
            if (h == "authorization") r.key_header = KeyHeader::Authorization;
            else if (h == "api-key") r.key_header = KeyHeader::ApiKey;
            else bad("must be authorization or api-key");
        } else if (s.name == "attempts") {
            std::uint64_t n = 0;
            if (!parse_uint(v, 100, n) || n < 1) bad("must be a whole number from 1 to 100");
            else r.failover.max_attempts = static_cast<unsigned>(n);
        } else if (s.name == "retry-on") {
            std::vector<int> statuses;
            std::string_view list = v;
            bool ok = true;
            while (!list.empty()) {
                std::size_t sep = list.find_first_of(", \t");
                std::string_view item = list.substr(0, sep);
                list = sep == std::string_view::npos ? std::string_view() : list.substr(sep + 1);
                if (item.empty()) continue;
                std::uint64_t n = 0;
                if (!parse_uint(item, 999, n) || n < 100 || n > 599) {
                    bad("\"" + std::string(item) + "\" is not an HTTP status (100 to 599)");
                    ok = false;
                } else if (n == 400 || n == 401 || n == 403 || n == 404) {
                    bad(std::to_string(n) +
                        " is never retried: 400, 401, 403 and 404 say the request itself is wrong, and "
                        "another origin would answer the same (a key answered 401 or 403 is set aside anyway)");
                    ok = false;
                } else {
                    statuses.push_back(static_cast<int>(n));
                }
            }
            if (ok) r.failover.statuses = std::move(statuses);
        } else if (s.name == "retry-body-limit") {
            std::uint64_t n = 0;
            if (!parse_size(v, kMaxRetryBodyLimit, n))
                bad("must be a size from 0 to 64MiB (each request in flight keeps that much in memory), "
                    "such as 1MiB or 65536");
            else r.failover.replay_limit = static_cast<std::size_t>(n);
        } else if (s.name == "head-timeout") {
            std::int64_t ms = 0;
            if (!parse_duration_ms(v, ms)) bad("must be a duration such as 60s or 1m30s (0 = -response-timeout)");
            else r.failover.head_timeout = std::chrono::milliseconds(ms);
        }
    }
    if (r.origins.empty())
        errors.push_back(at(file, section.line) + title + " has no origin line (origin = https://host)");
    if (errors.size() != errors_before) return false;
    out = std::move(r);
    return true;
}

void parse_access_keys(std::string_view text, const std::string& file, std::vector<AccessKey>& out,
                       std::vector<std::string>& errors) {
    std::map<std::string, int> labels;                         // label -> line
    std::map<std::string, std::pair<std::string, int>> keys;   // key -> label, line
    for_each_line(text, [&](int line, std::string_view raw) {
        std::string label, key, why;
        LineKind kind = lex_line(raw, label, key, why);
        const std::string where = at(file, line);
        if (kind == LineKind::Blank) return;
        if (kind == LineKind::Bad) {
            errors.push_back(where + why);
            return;
        }
        if (kind != LineKind::Setting) {
            errors.push_back(where + "expected \"label = key\"");
            return;
        }
        if (!valid_label(label, why)) {
            errors.push_back(where + why);
            return;
        }
        if (key.empty()) {
            errors.push_back(where + "empty key for \"" + label + "\"");
            return;
        }
        if (!valid_secret(key, why)) {
            errors.push_back(where + why + " (label \"" + label + "\")");
            return;
        }
        if (key.size() < 16) {
            errors.push_back(where + "the key of \"" + label +
                             "\" is shorter than 16 characters: a short key can be guessed");
            return;
        }
        if (auto it = labels.find(label); it != labels.end()) {
            errors.push_back(where + "duplicate label \"" + label + "\" (first at line " + std::to_string(it->second) +
                             ")");
            return;
        }
        if (auto it = keys.find(key); it != keys.end()) {
            errors.push_back(where + "the key of \"" + label + "\" is the same as that of \"" + it->second.first +
                             "\" (line " + std::to_string(it->second.second) + "): each needs a key of its own");
            return;
        }
        labels.emplace(label, line);
        keys.emplace(key, std::make_pair(label, line));
        out.push_back(AccessKey{label, key});
    });
}

}  // namespace op
