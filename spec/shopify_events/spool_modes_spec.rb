# frozen_string_literal: true

# Spool files never open the payloads wider than the queue does: a queue
# only its owner may read (queue_permissions 0600) gets spool files only
# the owner may read. The group gets read and write (the drain writes its
# acknowledgements into the file) when the queue gives it any access; others
# nothing.
RSpec.describe "spool file modes" do
  def segment_modes(dir)
    Dir.children(dir).grep(/\.seg\z/).map { |name| File.stat(File.join(dir, name)).mode & 0o7777 }.uniq
  end

  def spool_one(transport)
    if transport == :sysv
      msgmax = ShopifyEvents::Native.message_size_limit
      skip "kernel.msgmax is #{msgmax} here: a 20 KiB event would not need the spool" if msgmax > 20 * 1024
    end
    ShopifyEvents.emit!("t", "x" * (20 * 1024))
  end

  %i[sysv spool].each do |transport|
    it "follows queue_permissions 0600 with 0600 segments (#{transport})" do
      sink = use_transport(transport, queue_permissions: 0o600)
      spool_one(transport)
      expect(segment_modes(sink.spool_dir)).to eq([0o600])
    end

    it "gives the group read and write when the queue gives it read (0640 -> 0660, #{transport})" do
      sink = use_transport(transport, queue_permissions: 0o640)
      spool_one(transport)
      expect(segment_modes(sink.spool_dir)).to eq([0o660])
    end

    it "never gives others access, whatever the queue does (0666 -> 0660, #{transport})" do
      sink = use_transport(transport, queue_permissions: 0o666)
      spool_one(transport)
      expect(segment_modes(sink.spool_dir)).to eq([0o660])
    end
  end
end
