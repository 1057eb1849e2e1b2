# frozen_string_literal: true

require "fileutils"
require "open3"
require "rbconfig"

RSpec.describe "rails generate shopify_events:outbox" do
  around { |example| Dir.mktmpdir("outbox-generator") { |dir| (@dir = dir) && example.run } }

  def generate
    script = 'require "active_record"; require "rails/generators"; ' \
             'require "generators/shopify_events/outbox/outbox_generator"; ' \
             "ShopifyEvents::Generators::OutboxGenerator.start([], destination_root: ARGV[0])"
    Open3.capture2e(RbConfig.ruby, "-I", File.join(SpecProcesses::ROOT, "lib"), "-e", script, @dir)
  end

  it "writes a migration that creates the outbox table, once" do
    output, status = generate
    expect(status).to be_success, output
    files = Dir[File.join(@dir, "db", "migrate", "*_create_shopify_events_outbox.rb")]
    expect(files.size).to eq(1), output

    SpecActiveRecord.load
    namespace = Module.new
    namespace.module_eval(File.read(files.first))
    SpecActiveRecord.with_connection(adapter: "sqlite3", database: File.join(@dir, "db.sqlite3")) do |connection|
      namespace::CreateShopifyEventsOutbox.new.tap { |m| m.verbose = false }.exec_migration(connection, :up)
      columns = connection.columns("shopify_events_outbox").to_h { |c| [c.name, [c.type, c.null]] }
      expect(columns).to eq("event_id" => [:string, false], "envelope" => [:binary, false],
                            "created_at" => [:datetime, false])
      expect(connection.primary_key("shopify_events_outbox")).to eq("event_id")
    end

    output, status = generate
    expect(status).to be_success, output
    expect(output).to include("identical")
    expect(Dir[File.join(@dir, "db", "migrate", "*.rb")].size).to eq(1)
  end
end
