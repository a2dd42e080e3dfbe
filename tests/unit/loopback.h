// A connected TCP pair on 127.0.0.1, made through the net:: API, for the platform tests.
#pragma once

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "doctest/doctest.h"
#include "socket.h"

namespace op_test {

// read() on `s` with nothing to read: WouldBlock when `s` is non-blocking. Were it
// blocking, the read would hang: after 5 s `peer` sends a byte, so that the caller's
// check fails instead.
inline op::IoResult read_nothing(op::SocketHandle s, op::SocketHandle peer) {
    std::atomic<bool> returned{false};
    std::thread rescue([&] {
        for (int i = 0; i < 5000 && !returned; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        if (!returned) op::net::write(peer, "!", 1);
    });
    char c;
    op::IoResult r = op::net::read(s, &c, 1);
    returned = true;
    rescue.join();
    return r;
}

// A listener on 127.0.0.1 and a port the kernel chose; closed on destruction.
struct LoopbackListener {
    op::SocketHandle fd = op::kInvalidSocket;
    std::uint16_t port = 0;

    LoopbackListener() {
        std::string error;
        fd = op::net::listen_tcp("127.0.0.1", 0, 16, op::net::PortShare::Alone, error);
        REQUIRE_MESSAGE(fd != op::kInvalidSocket, error);
        port = op::net::local_port(fd);
        REQUIRE(port != 0);
    }
    ~LoopbackListener() { op::net::close(fd); }

    // Starts a connection to this listener (non-blocking; it completes in the kernel).
    op::SocketHandle connect() const {
        op::SockAddr addr;
        std::string error;
        REQUIRE_MESSAGE(op::net::resolve("127.0.0.1", port, &addr, 1, error) == 1, error);
        op::SocketHandle s = op::kInvalidSocket;
        REQUIRE(op::net::connect_start(addr, &s).status == op::IoStatus::Ok);
        return s;
    }

    // The next pending connection, waiting up to 5 s for one; kInvalidSocket if none came.
    op::SocketHandle accept_within_5s() const {
        for (int i = 0; i < 5000; ++i) {
            op::SocketHandle s = op::kInvalidSocket;
            op::IoResult r = op::net::accept(fd, &s);
            if (r.status == op::IoStatus::Ok) return s;
            REQUIRE(r.status == op::IoStatus::WouldBlock);
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        return op::kInvalidSocket;
    }
};

// Both ends of one loopback connection, each closed on destruction. Both are checked to
// be non-blocking first, so that a test reading until WouldBlock fails instead of hanging.
struct LoopbackPair {
    op::SocketHandle client = op::kInvalidSocket;
    op::SocketHandle server = op::kInvalidSocket;

    LoopbackPair() {
        LoopbackListener listener;
        client = listener.connect();
        server = listener.accept_within_5s();
        REQUIRE(server != op::kInvalidSocket);
        REQUIRE(read_nothing(server, client).status == op::IoStatus::WouldBlock);
        REQUIRE(read_nothing(client, server).status == op::IoStatus::WouldBlock);
    }
    ~LoopbackPair() {
        close_client();
        close_server();
    }
    void close_client() {
        if (client != op::kInvalidSocket) op::net::close(client);
        client = op::kInvalidSocket;
    }
    void close_server() {
        if (server != op::kInvalidSocket) op::net::close(server);
        server = op::kInvalidSocket;
    }
    // Makes the server end reset the connection: a close with unread bytes sends RST
    // instead of FIN (RFC 1122 4.2.2.13), on every OS, with no socket option needed. Two
    // bytes go in one segment; the server reads one (so both have arrived) and closes.
    void reset_from_server() {
        REQUIRE(op::net::write(client, "xy", 2).status == op::IoStatus::Ok);
        char c;
        op::IoResult r;
        for (int i = 0; i < 5000; ++i) {
            r = op::net::read(server, &c, 1);
            if (r.status != op::IoStatus::WouldBlock) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        REQUIRE(r.status == op::IoStatus::Ok);
        close_server();
    }
};

}  // namespace op_test
