# frozen_string_literal: true

require "open3"

# A spool directory on a tiny tmpfs that fills up: emit drops with one clear
# log line (no crash, no SIGBUS: segments are allocated before they are
# written), emit! raises SpoolFull, and what was spooled before is intact.
RSpec.describe "a spool on a filesystem that fills up" do
  let(:log) { StringIO.new }

  around do |example|
    skip "needs root to mount a tmpfs (CI runs as root)" unless Process.uid.zero?
    @mount = spec_spool_dir
    _, err, status = Open3.capture3("mount", "-t", "tmpfs", "-o", "size=1m,mode=0770", "tmpfs", @mount)
    raise "mount a 1 MiB tmpfs on #{@mount}: #{err}" unless status.success?

    begin
      example.run
    ensure
      ShopifyEvents.reset!
      GC.start # the writer's mappings and locks go with the native emitter
      system("umount", @mount, err: File::NULL) || system("umount", "-l", @mount)
    end
  end

  shared_examples "drops clearly and keeps what it spooled" do
    it "drops with one log line naming the directory and the fix, raises SpoolFull, keeps the spooled events" do
      ids = []
      while (id = ShopifyEvents.emit("t", "d" * 2000))
        ids << id
        raise "the 1 MiB filesystem never filled" if ids.size > 2000
      end
      drops = Array.new(10) { ShopifyEvents.emit("t", "d" * 2000) }

      expect(drops).to all(be_nil)
      expect(ShopifyEvents.stats[:dropped]).to eq(11)
      expect(log.string.scan("dropping events").size).to eq(1)
      expect(log.string).to include("spool #{@mount}: the filesystem has")
        .and include("free disk space or move spool_dir")
      expect { ShopifyEvents.emit!("t", "d" * 2000) }.to raise_error(ShopifyEvents::SpoolFull, /filesystem has/)
      expect(ids.size).to be > 100
      expect(sink.events.map(&:id)).to eq(ids)
    end
  end

  context "with the spool transport" do
    let!(:sink) { use_transport(:spool, dir: @mount, logger: Logger.new(log), spool_max_bytes: "1GiB") }

    include_examples "drops clearly and keeps what it spooled"
  end

  context "behind a full queue (sysv)" do
    let!(:sink) do
      use_transport(:sysv, dir: @mount, logger: Logger.new(log), spool_max_bytes: "1GiB").tap do |s|
        s.queue.capacity = 4096
      end
    end

    include_examples "drops clearly and keeps what it spooled"
  end
end
