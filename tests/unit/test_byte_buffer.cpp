#include <memory>
#include <string>

#include "byte_buffer.h"
#include "doctest/doctest.h"

using op::ByteBuffer;

TEST_CASE("byte buffer: append, consume and view keep byte order") {
    ByteBuffer b;
    CHECK(b.empty());
    CHECK(b.capacity() == 0);  // no storage until first use
    b.append("hello ");
    b.append("world");
    CHECK(b.view() == "hello world");
    b.consume(6);
    CHECK(b.view() == "world");
    b.consume(100);
    CHECK(b.empty());
}

TEST_CASE("byte buffer: grows past its initial block and compacts consumed space") {
    ByteBuffer b;
    std::string big(10000, 'x');
    for (int i = 0; i < 10; ++i) big[static_cast<std::size_t>(i) * 1000] = static_cast<char>('a' + i);
    REQUIRE(b.append(big));
    CHECK(b.view() == big);
    b.consume(9000);
    CHECK(b.view() == big.substr(9000));
    std::size_t cap = b.capacity();
    b.append(std::string(100, 'y'));  // fits after sliding the 1000 live bytes down
    CHECK(b.capacity() == cap);
    CHECK(b.view() == big.substr(9000) + std::string(100, 'y'));
}

TEST_CASE("byte buffer: a large buffer frees its storage once drained") {
    ByteBuffer b;
    b.append(std::string(100000, 'z'));
    CHECK(b.capacity() >= 100000);
    b.consume(b.size());
    CHECK(b.capacity() == 0);
}

TEST_CASE("byte buffer: prepare/commit writes in place") {
    ByteBuffer b;
    char* p = b.prepare(4);
    REQUIRE(p != nullptr);
    p[0] = 'a'; p[1] = 'b'; p[2] = 'c'; p[3] = 'd';
    b.commit(3);
    CHECK(b.view() == "abc");
}

TEST_CASE("byte buffer: even a small buffer holds no storage once drained") {
    ByteBuffer b;
    b.append("x");
    CHECK(b.capacity() > 0);
    b.consume(1);
    CHECK(b.capacity() == 0);
    CHECK(b.empty());
}

TEST_CASE("byte buffer: swap exchanges contents and storage without copying") {
    ByteBuffer a, b;
    a.append("head and body");
    a.consume(9);
    const char* storage = a.data();
    a.swap(b);
    CHECK(a.empty());
    CHECK(a.capacity() == 0);
    CHECK(b.view() == "body");
    CHECK(b.data() == storage);  // the same bytes, moved by pointer
    b.swap(b);                   // self-swap is harmless
    CHECK(b.view() == "body");
}

TEST_CASE("byte buffer: drained blocks are reused by this thread, and stay independent") {
    // A block given back by one buffer is handed to the next one that needs one: the
    // recycled storage must behave exactly like fresh storage.
    auto hold = std::make_unique<ByteBuffer[]>(64);  // takes whatever the cache held:
    for (int i = 0; i < 64; ++i) hold[i].append("x");  // it is empty from here on
    const char* first = nullptr;
    {
        ByteBuffer a;
        a.append("first request");
        first = a.data();
    }  // destroyed: its block goes to the cache
    ByteBuffer b;
    b.append("second");
    CHECK(b.data() == first);  // the cached block came back
    CHECK(b.view() == "second");
    ByteBuffer c;
    c.append("third");
    CHECK(c.data() != b.data());  // one block, one owner
    b.consume(b.size());          // b's block back to the cache
    c.append(std::string(5000, 'x'));  // c grows past the block size: a fresh, larger block
    CHECK(c.view().substr(0, 5) == "third");
    CHECK(c.size() == 5005);
    ByteBuffer d;
    d.append("fourth");
    CHECK(d.view() == "fourth");
    CHECK(c.view().substr(0, 5) == "third");  // c untouched by d reusing blocks
}
