// Windows part of platform/sys.h: console control events in place of signals, the
// system clock and local time, file checks, and the system certificate stores.
#include "sys.h"

#include <windows.h>
#include <wincrypt.h>

#include <csignal>
#include <cstdio>

namespace op {
namespace sys {

// Windows has no SIGPIPE: a send on a closed connection is an error return already.
void ignore_sigpipe() {}

namespace {

void (*g_terminate_handler)(int) = nullptr;

// Runs on a thread the system starts for the event (never inside another thread's
// code), so the handler has no signal-context restriction here; Poller::wake is
// thread-safe anyway.
BOOL WINAPI on_console_event(DWORD event) {
    switch (event) {
    case CTRL_C_EVENT:
    case CTRL_BREAK_EVENT:
        // Ctrl-C and Ctrl-Break: what SIGINT is on Linux. Returning TRUE keeps the
        // default handler (ExitProcess) from running; main's handler stops the loops,
        // or exits at once on the second event.
        if (g_terminate_handler) g_terminate_handler(SIGINT);
        return TRUE;
    case CTRL_CLOSE_EVENT:
    case CTRL_LOGOFF_EVENT:
    case CTRL_SHUTDOWN_EVENT:
        // The console window is closing, or the session ends: what SIGTERM is on Linux.
        // Here the system ends the process as soon as this function returns, so it
        // does not: it waits while the loops finish (main returning ends the process,
        // this thread with it). Windows allows a few seconds for that (5 s for a console
        // close), then ends the process anyway, whatever -shutdown-grace says.
        if (g_terminate_handler) g_terminate_handler(SIGTERM);
        Sleep(INFINITE);
        return TRUE;
    default:
        return FALSE;  // not ours: the next handler (the default one) decides
    }
}

}  // namespace

void on_terminate_signal(void (*handler)(int)) {
    g_terminate_handler = handler;
    SetConsoleCtrlHandler(on_console_event, TRUE);
}

// No SIGHUP on Windows: a new certificate, or a rotated log, takes a restart.
void on_reload_signal(void (*)(int)) {}

// No descriptor limit to raise: sockets are kernel handles, bounded by memory only.
void raise_fd_limit() {}

// The C runtime's heap (msvcrt over the Windows heap) has no thresholds to set.
void tune_allocator() {}
// The Windows heap decommits free pages by itself.
void release_free_memory() {}

std::int64_t monotonic_ms() { return static_cast<std::int64_t>(GetTickCount64()); }

void format_local_time(char out[20]) {
    SYSTEMTIME t;
    GetLocalTime(&t);
    std::snprintf(out, 20, "%04u/%02u/%02u %02u:%02u:%02u", t.wYear, t.wMonth, t.wDay, t.wHour, t.wMinute,
                  t.wSecond);
}

// Paths are in the ANSI code page, as the C runtime's fopen (which reads the file
// afterwards) takes them.
bool file_exists(const std::string& path) {
    DWORD a = GetFileAttributesA(path.c_str());
    return a != INVALID_FILE_ATTRIBUTES && !(a & FILE_ATTRIBUTE_DIRECTORY);
}

bool dir_exists(const std::string& path) {
    DWORD a = GetFileAttributesA(path.c_str());
    return a != INVALID_FILE_ATTRIBUTES && (a & FILE_ATTRIBUTE_DIRECTORY);
}

bool has_os_trust_store() { return true; }

namespace {

// Appends the DER of every certificate in the system store `name` ("ROOT", "CA") of the
// current user, which includes the local machine's (CertOpenSystemStore's view).
bool read_store(const wchar_t* name, std::vector<std::string>& der, std::string& error) {
    HCERTSTORE store = CertOpenSystemStoreW(0, name);
    if (!store) {
        error = "cannot open the Windows certificate store " + std::string(name[0] == L'R' ? "ROOT" : "CA") +
                " (error " + std::to_string(GetLastError()) + ")";
        return false;
    }
    PCCERT_CONTEXT cert = nullptr;
    while ((cert = CertEnumCertificatesInStore(store, cert)) != nullptr) {
        if (cert->dwCertEncodingType & X509_ASN_ENCODING)
            der.emplace_back(reinterpret_cast<const char*>(cert->pbCertEncoded), cert->cbCertEncoded);
    }
    CertCloseStore(store, 0);
    return true;
}

}  // namespace

bool os_trust_store(std::vector<std::string>& roots, std::vector<std::string>& intermediates, std::string& error) {
    // ROOT holds the trust anchors; CA the intermediate certificates Windows has met,
    // which it uses to complete chains that servers send incomplete.
    return read_store(L"ROOT", roots, error) && read_store(L"CA", intermediates, error);
}

}  // namespace sys
}  // namespace op
