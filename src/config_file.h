// The -config file (README "Configuration file"), the key files it names and the
// -access-keys file: text in, values and "file:line: what is wrong" errors out. No
// global state; files are read through the injected ReadFile, variables through the
// EnvLookup, so every rule is testable without touching the disk. config.cpp applies
// the top-level settings through the same option table as the flags.
//
// Syntax: "name = value" lines; '#' starts a comment (outside a value's double quotes);
// blank lines are ignored; "[target NAME]" and "[default]" open a section. Inside a
// section, "origin = URL" starts an origin; key-env, key-file, key and egress apply to
// the latest origin; key-header, attempts, retry-on, retry-body-limit and head-timeout
// to the whole section.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config.h"

namespace op {

struct ConfigSetting {
    int line = 0;
    std::string name;
    std::string value;
};

struct ConfigSection {
    int line = 0;
    bool is_default = false;  // [default]
    std::string name;         // [target NAME], lower case; "" for [default]
    std::vector<ConfigSetting> settings;
};

struct ConfigFileText {
    std::vector<ConfigSetting> top;  // before the first section
    std::vector<ConfigSection> sections;
};

// Splits a configuration file into settings and sections. Syntax errors (a line that is
// neither "name = value" nor a section, an unclosed quote, a bad or repeated target
// name) are appended to `errors` as "file:line: ...".
ConfigFileText split_config_file(std::string_view text, const std::string& file, std::vector<std::string>& errors);

// Builds the route of one section: its origins (with keys and egress) and failover
// settings. Errors as "file:line: ..." (key files: theirs). False when any.
bool build_route(const ConfigSection& section, const std::string& file, const EnvLookup& env, const ReadFile& read,
                 Route& out, std::vector<std::string>& errors);

// The -access-keys file: "label = key" lines, '#' comments. Errors as "file:line: ...".
void parse_access_keys(std::string_view text, const std::string& file, std::vector<AccessKey>& out,
                       std::vector<std::string>& errors);

// Value parsers shared with the flags (config.cpp).
bool parse_uint(std::string_view s, std::uint64_t max, std::uint64_t& out);
bool parse_size(std::string_view s, std::uint64_t max, std::uint64_t& out);
bool parse_duration_ms(std::string_view s, std::int64_t& out);

}  // namespace op
