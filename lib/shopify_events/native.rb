# frozen_string_literal: true

# The precompiled platform gem (`rake native:gem`) ships the extension per
# Ruby ABI, in shopify_events/<major.minor>/; a source build (`gem install`
# of the source gem, `rake compile`) puts it beside this file.
begin
  precompiled = File.join(__dir__, RUBY_VERSION[/\A\d+\.\d+/], "shopify_events")
  if File.exist?("#{precompiled}.#{RbConfig::CONFIG["DLEXT"]}")
    require precompiled
  else
    require "shopify_events/shopify_events"
  end
rescue LoadError => e
  raise LoadError, "shopify_events: the native extension is not built (#{e.message}). " \
                   "In a checkout run `rake compile`; an installed gem builds it at `gem install`."
end
