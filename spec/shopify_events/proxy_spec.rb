# frozen_string_literal: true

require "socket"
require "tmpdir"
require "net/http"

# The real `shopify-events proxy` binary between Ruby processes and a host
# queue; the "container" children run in their own IPC namespace.
RSpec.describe "shopify-events proxy" do
  binary = File.expand_path("../../lib/shopify_events/shopify-events", __dir__)
  lib = File.expand_path("../../lib", __dir__)

  let(:tmpdir) { Dir.mktmpdir("shopify-events-proxy") }
  let(:port) { free_port }
  let(:tcp) { "tcp://127.0.0.1:#{port}" }
  let(:unix) { "unix://#{tmpdir}/proxy.sock" }
  let(:log) { File.join(tmpdir, "proxy.log") }

  define_method(:start_proxy) do |key, *extra|
    # --run-dir: its stats snapshot goes to the spec's directory, not /run.
    # --spool-dir: a directory that does not exist, so the proxy runs
    # without a spool (as on a host without one) and never spools into the
    # host's /var/spool/shopify-events.
    pid = Process.spawn(binary, "proxy", "--listen", tcp, "--listen", unix, "--queue-key", key.to_s,
                        "--run-dir", tmpdir, "--spool-dir", File.join(tmpdir, "no-spool"), *extra,
                        out: File::NULL, err: [log, "a"])
    (@proxies ||= []) << pid
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 10
    begin
      TCPSocket.new("127.0.0.1", port).close
    rescue Errno::ECONNREFUSED
      raise "proxy did not start: #{File.read(log)}" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.02
      retry
    end
    pid
  end

  def stop_proxy(pid, signal = "TERM")
    Process.kill(signal, pid)
    Process.wait(pid)
    @proxies.delete(pid)
  rescue Errno::ESRCH, Errno::ECHILD
    nil
  end

  define_method(:container) do |script, env = {}|
    env = { "SHOPIFY_EVENTS_TRANSPORT" => "socket", "SHOPIFY_EVENTS_PROXY" => tcp }.merge(env)
    Process.spawn(env, "unshare", "--ipc", RbConfig.ruby, "-I", lib, "-rshopify_events", "-e", script,
                  err: [log, "a"])
  end

  def host_queue
    key = spec_queue_key
    with_queue_limits(msgmnb: 16 * 1024 * 1024) { ShopifyEvents::Native::Queue.create(key, 0o600) }
    [key, ShopifyEvents::Native::Queue.open(key)]
  end

  def hello
    "SEPX".b + [1, 0, 0].pack("CCv")
  end

  def frame(seq, envelope)
    [8 + envelope.bytesize, seq].pack("VQ<") + envelope
  end

  def connect_handshaken
    socket = TCPSocket.new("127.0.0.1", port)
    socket.write(hello)
    welcome = socket.read(12)
    expect(welcome.byteslice(0, 4)).to eq("SEPY")
    expect(welcome.getbyte(5)).to eq(0)
    socket
  end

  # Replies until EOF or timeout: [[:ack, seq] | [:nack, seq, reason]].
  def replies(socket, timeout: 5)
    data = "".b
    while socket.wait_readable(timeout)
      chunk = socket.read_nonblock(4096, exception: false)
      break if chunk.nil? || chunk == :wait_readable

      data << chunk
    end
    parse_replies(data)
  rescue Errno::ECONNRESET
    parse_replies(data)
  end

  def parse_replies(data)
    out = []
    until data.empty?
      if data.getbyte(0) == 1
        out << [:ack, data.byteslice(1, 8).unpack1("Q<")]
        data = data.byteslice(9..)
      else
        seq, reason, len = data.byteslice(1, 11).unpack("Q<Cv")
        out << [:nack, seq, reason]
        data = data.byteslice((12 + len)..)
      end
    end
    out
  end

  after do
    Array(@proxies).dup.each { |pid| stop_proxy(pid, "KILL") }
    FileUtils.rm_rf(tmpdir)
  end

  it "delivers every event emitted from processes in their own IPC namespace into the host queue" do
    key, queue = host_queue
    metrics_port = free_port
    start_proxy(key, "--metrics-addr", "127.0.0.1:#{metrics_port}")
    script = <<~RUBY
      begin
        ShopifyEvents::Native::Queue.open(#{key})
        abort "the container can see the host queue"
      rescue ShopifyEvents::QueueNotFound
        nil
      end
      500.times { |i| ShopifyEvents.emit("container.events", { child: ENV.fetch("CHILD"), i: i }) }
      exit(ShopifyEvents.flush(20) ? 0 : 1)
    RUBY
    children = 3.times.map { |c| container(script, "CHILD" => c.to_s, "SHOPIFY_EVENTS_PROXY" => c.even? ? tcp : unix) }
    statuses = children.map { |pid| Process.wait2(pid).last }
    expect(statuses).to all(be_success), File.read(log)

    events = drain_events(queue)
    expect(events.size).to eq(1500)
    expect(events.map { |e| [e.data["child"], e.data["i"]] }.uniq.size).to eq(1500)
    metrics = Net::HTTP.get(URI("http://127.0.0.1:#{metrics_port}/metrics"))
    expect(metrics).to include("shopify_events_proxy_events_enqueued_total{queue=\"#{format("%#010x", key)}\"} 1500")
  end

  it "loses no event when the proxy is killed with -9 mid-stream and restarted" do
    key, queue = host_queue
    proxy = start_proxy(key)
    script = <<~RUBY
      20.times do |batch|
        1000.times { |i| ShopifyEvents.emit!("container.events", { i: batch * 1000 + i }) }
        sleep 0.02
      end
      exit(ShopifyEvents.flush(30) ? 0 : 1)
    RUBY
    child = container(script)
    sleep 0.01 until queue.stat[:depth] > 2000
    stop_proxy(proxy, "KILL")
    sleep 0.3
    start_proxy(key)
    expect(Process.wait2(child).last).to be_success, File.read(log)

    numbers = drain_events(queue).map { |e| e.data["i"] }
    expect(numbers.uniq.sort).to eq((0...20_000).to_a) # duplicates allowed, nothing missing
  end

  it "nacks a corrupt envelope, then closes connections sending oversized or truncated frames, and serves others" do
    key, queue = host_queue
    start_proxy(key)
    good = ShopifyEvents::Native.encode("proxy.frames", "ok", nil, nil)
    corrupt = good.dup
    corrupt.setbyte(corrupt.bytesize - 1, corrupt.getbyte(corrupt.bytesize - 1) ^ 0xff)

    socket = connect_handshaken
    socket.write(frame(1, good) + frame(2, corrupt) + frame(3, good))
    socket.close_write
    expect(replies(socket)).to include([:nack, 2, 3], [:ack, 3])

    oversized = connect_handshaken
    oversized.write([100_000_000, 1].pack("VQ<"))
    expect(replies(oversized)).to eq([[:nack, 1, 1]])

    truncated = connect_handshaken
    truncated.write(frame(1, good).byteslice(0, 30))
    truncated.close_write
    expect(replies(truncated)).to eq([])

    other = connect_handshaken
    other.write(frame(7, good))
    expect(replies(other, timeout: 1)).to eq([[:ack, 7]])
    expect(drain_events(queue).size).to eq(3)
    expect(File.read(log)).to include("too_large").or include("-byte limit this proxy announced")
    expect(File.read(log)).to include("truncated frame")
  end

  it "closes a client that connects and sends nothing, without delaying others" do
    key, queue = host_queue
    start_proxy(key, "--handshake-timeout", "0.3")
    silent = TCPSocket.new("127.0.0.1", port)
    ShopifyEvents.configure do |c|
      c.transport = :socket
      c.proxy = tcp
    end
    ShopifyEvents.emit("proxy.silent", "x")
    expect(ShopifyEvents.flush(5)).to be(true)
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    expect(silent.wait_readable(5) && silent.read(1)).to be_nil
    expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).to be < 3
    expect(drain_events(queue).size).to eq(1)
  end

  it "serves 50 concurrent clients, each a forked child that reconnects on its own" do
    key, queue = host_queue
    start_proxy(key)
    ShopifyEvents.configure do |c|
      c.transport = :socket
      c.proxy = unix
    end
    ShopifyEvents.emit("proxy.fork", { parent: true })
    expect(ShopifyEvents.flush(5)).to be(true)
    children = 50.times.map do |n|
      fork do
        100.times { |i| ShopifyEvents.emit("proxy.fork", { child: n, i: i }) }
        exit!(ShopifyEvents.flush(30) && ShopifyEvents.stats[:acked] >= 100 ? 0 : 1)
      end
    end
    expect(children.map { |pid| Process.wait2(pid).last }).to all(be_success)
    events = drain_events(queue)
    expect(events.size).to eq(5001)
    expect(events.map(&:id).uniq.size).to eq(5001)
  end

  it "raises PayloadTooLarge for an event larger than the host allows, once the proxy told its limit" do
    key, = host_queue
    start_proxy(key)
    ShopifyEvents.configure do |c|
      c.transport = :socket
      c.proxy = tcp
    end
    ShopifyEvents.emit("proxy.size", "small")
    expect(ShopifyEvents.flush(5)).to be(true)
    huge = "x" * (ShopifyEvents::Native.message_size_limit + 1)
    expect { ShopifyEvents.emit("proxy.size", huge) }.to raise_error(ShopifyEvents::PayloadTooLarge, /kernel.msgmax/)
  end
end
