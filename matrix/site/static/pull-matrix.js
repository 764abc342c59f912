/* pull-matrix: matrix filter and sort, the version finder and the runbook classifier.
 *
 * Every string from the data (tags, messages, causes) is put into the page with textContent or
 * as an attribute value, never parsed as HTML.
 */
(function () {
  "use strict";

  function readJson(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  function el(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  /* ------------------------------------------------------------------ classifier */

  var compiled = null;

  function compileRules(rules) {
    return rules.rules.map(function (rule) {
      return { cls: rule["class"], re: new RegExp(rule.pattern, rule.flags || "i") };
    });
  }

  /* The same answer as matrix.classify.classify: first matching rule, else "unknown". */
  function classify(message, rules) {
    var list = rules ? compileRules(rules) : compiled;
    // Only the start is classified, as in Python (MAX_CLASSIFIED).
    var text = String(message || "").slice(0, 4096).trim();
    if (!text || !list) return "unknown";
    for (var i = 0; i < list.length; i++) {
      if (list[i].re.test(text)) return list[i].cls;
    }
    return "unknown";
  }

  /* ------------------------------------------------------------------ versions */

  /* "20.10.24+dfsg1" -> [20, 10, 24]; "v28.5" -> [28, 5, 0]; null when it is not a version. */
  function parseVersion(text) {
    var match = /^\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(String(text || ""));
    if (!match) return null;
    return [Number(match[1]), Number(match[2] || 0), Number(match[3] || 0)];
  }

  function compare(a, b) {
    for (var i = 0; i < 3; i++) {
      var d = (a[i] || 0) - (b[i] || 0);
      if (d) return d;
    }
    return 0;
  }

  function magnitude(v) {
    return (v[0] || 0) * 1e6 + (v[1] || 0) * 1e3 + (v[2] || 0);
  }

  function supports(cap, version) {
    var since = parseVersion(cap.since || "0") || [0, 0, 0];
    var until = parseVersion(cap.until || "9999") || [9999, 0, 0];
    return compare(since, version) <= 0 && compare(version, until) < 0;
  }

  /* The tested engine to answer for `version`: the same x.y.z if tested, else the nearest one
   * that the capability table says behaves the same, else the nearest by version number. */
  function nearestEngine(version, engines, capabilities) {
    var exact = engines.filter(function (e) { return compare(e.key, version) === 0; });
    if (exact.length) return { engine: exact[exact.length - 1], tested: true, differs: [] };
    var caps = capabilities || [];
    function profile(v) { return caps.map(function (c) { return supports(c, v); }).join(); }
    var wanted = profile(version);
    var alike = engines.filter(function (e) { return profile(e.key) === wanted; });
    var pool = alike.length ? alike : engines;
    var best = null;
    pool.forEach(function (e) {
      var distance = Math.abs(magnitude(e.key) - magnitude(version));
      if (!best || distance < best.distance ||
          (distance === best.distance && compare(e.key, best.engine.key) < 0)) {
        best = { engine: e, distance: distance };
      }
    });
    if (!best) return null;
    var differs = caps.filter(function (c) {
      return supports(c, version) !== supports(c, best.engine.key);
    }).map(function (c) { return c.feature; });
    return { engine: best.engine, tested: false, differs: differs };
  }

  /* ------------------------------------------------------------------ matrix */

  function initMatrix(form) {
    var tables = Array.prototype.slice.call(document.querySelectorAll("table.pm-matrix"));
    var output = form.querySelector("output");
    function apply() {
      var needle = form.elements.filter.value.trim().toLowerCase();
      var onlyFailing = form.elements.failing.checked;
      var order = form.elements.sort.value;
      var shown = 0;
      var total = 0;
      tables.forEach(function (table) {
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          if (order === "name") return a.dataset.tag < b.dataset.tag ? -1 : a.dataset.tag > b.dataset.tag ? 1 : 0;
          var d = Number(a.dataset.order) - Number(b.dataset.order);
          return order === "oldest" ? -d : d;
        });
        rows.forEach(function (row) {
          var visible = (!needle || row.dataset.tag.toLowerCase().indexOf(needle) !== -1) &&
            (!onlyFailing || row.hasAttribute("data-failing"));
          row.hidden = !visible;
          total += 1;
          if (visible) shown += 1;
          body.appendChild(row);
        });
      });
      if (output) output.textContent = shown + " of " + total + " rows shown";
    }
    form.addEventListener("input", apply);
    form.addEventListener("change", apply);
    apply();
  }

  /* ------------------------------------------------------------------ finder */

  /* Verdict codes in the finder data that are not classes (see generator.finder_data). */
  var NOT_PULLED_YET = -1;

  /* plural(1, "tag") is "1 tag", plural(3, "tag") "3 tags"; `many` is the plural form. */
  function plural(count, one, many) {
    return count + " " + (count === 1 ? one : (many || one + "s"));
  }

  function tagList(tags, slugs, root, imageSlug, limit) {
    var wrap = el("p", null, "pm-taglist");
    tags.slice(0, limit).forEach(function (tag, i) {
      var link = el("a", tag);
      link.href = root + "tags/" + imageSlug + "/" + slugs[tag] + ".html";
      wrap.appendChild(link);
      if (i < Math.min(tags.length, limit) - 1) wrap.appendChild(document.createTextNode(" "));
    });
    if (tags.length > limit) {
      var rest = el("details");
      rest.appendChild(el("summary", "and " + (tags.length - limit) + " more"));
      rest.appendChild(tagList(tags.slice(limit), slugs, root, imageSlug, tags.length));
      wrap.appendChild(rest);
    }
    return wrap;
  }

  function answerFinder(data, text, target, root) {
    target.textContent = "";
    var version = parseVersion(text);
    if (!version) {
      target.appendChild(el("p", "That does not look like a Docker version: expected something like 24.0.7.", "pm-error"));
      return null;
    }
    if (!data.engines.length) {
      target.appendChild(el("p", "No engine has been tested yet: not published (yet?)"));
      return null;
    }
    var near = nearestEngine(version, data.engines, data.capabilities);
    var head = el("p", null, near.tested ? "pm-tested" : "pm-inferred");
    head.dataset.engine = near.engine.version;
    head.dataset.tested = near.tested ? "yes" : "no";
    if (near.tested) {
      head.appendChild(el("strong", "Tested: "));
      head.appendChild(document.createTextNode("these answers are what Docker " +
        near.engine.version + " did when it pulled each tag in the latest run."));
    } else {
      head.appendChild(el("strong", "Inferred (not tested): "));
      head.appendChild(document.createTextNode(
        "Docker " + version.join(".") + " was not tested; these answers are those of the nearest tested engine, " +
        near.engine.version + "."));
      if (near.differs.length) {
        head.appendChild(document.createTextNode(" The capability table says they differ on: " + near.differs.join(", ") + "."));
      }
    }
    target.appendChild(head);
    var summary = el("ul", null, "pm-finder-summary");
    target.appendChild(summary);
    data.images.forEach(function (image) {
      var slugs = image.slugs || Object.create(null);
      target.appendChild(el("h2", image.name));
      image.blocks.forEach(function (block) {
        var index = block.engines.indexOf(near.engine.version);
        var section = el("section", null, "pm-finder-block");
        section.dataset.registry = block.registry;
        section.dataset.platform = block.platform;
        var where = block.registry + "/" + block.repository + (block.role || "") + " · " + block.platform;
        section.appendChild(el("h3", where));
        if (index < 0) {
          section.appendChild(el("p", "Not tested with this engine."));
          target.appendChild(section);
          return;
        }
        var ok = [];
        var failed = Object.create(null);
        var untested = [];
        block.verdicts[index].forEach(function (code, position) {
          if (code === NOT_PULLED_YET) untested.push(image.tags[position]);
          if (code < 0) return;
          var cls = data.classes[code];
          if (cls === "ok") ok.push(image.tags[position]);
          else (failed[cls] = failed[cls] || []).push(image.tags[position]);
        });
        var failedCount = Object.keys(failed).reduce(function (n, k) { return n + failed[k].length; }, 0);
        var counts = plural(ok.length, "tag pulls", "tags pull") + ", " + failedCount + " fail";
        if (untested.length) counts += ", " + untested.length + " not tested yet";
        summary.appendChild(el("li", where + ": " + counts));
        var summary2 = el("p", null, "pm-finder-ok");
        summary2.appendChild(el("strong", plural(ok.length, "tag pulls", "tags pull")));
        summary2.appendChild(document.createTextNode(ok.length ? " (newest first):" : "."));
        section.appendChild(summary2);
        if (ok.length) section.appendChild(tagList(ok, slugs, root, image.slug, 40));
        Object.keys(failed).sort().forEach(function (cls) {
          var line = el("p", null, "pm-finder-fail");
          line.dataset.verdict = cls;
          line.appendChild(el("span", cls, "pm-verdict v-" + cls));
          line.appendChild(document.createTextNode(" (" + (data.titles[cls] || cls) + "): " +
            plural(failed[cls].length, "tag")));
          section.appendChild(line);
          section.appendChild(tagList(failed[cls], slugs, root, image.slug, 20));
        });
        if (untested.length) {
          var line = el("p", null, "pm-finder-untested");
          line.appendChild(el("strong", plural(untested.length, "tag") + " not tested yet"));
          line.appendChild(document.createTextNode(" with this engine (its pull was deferred by " +
            "the rate-limit budget, or the engine has not run since the tag was found):"));
          section.appendChild(line);
          section.appendChild(tagList(untested, slugs, root, image.slug, 20));
          var guesses = (block.predicted || [])[index] || {};
          var byGuess = Object.create(null);
          untested.forEach(function (tag) {
            var guess = guesses[String(image.tags.indexOf(tag))];
            if (guess) (byGuess[guess] = byGuess[guess] || []).push(tag);
          });
          Object.keys(byGuess).sort().forEach(function (guess) {
            var note = el("p", null, "pm-finder-predicted");
            note.dataset.predicted = guess;
            note.appendChild(el("em", "Predicted, not observed: "));
            note.appendChild(document.createTextNode("the registry check expects "));
            note.appendChild(el("span", guess, "pm-verdict v-" + guess));
            note.appendChild(document.createTextNode(" for " + byGuess[guess].join(", ") + "."));
            section.appendChild(note);
          });
        }
        target.appendChild(section);
      });
    });
    return near;
  }

  function initFinder(form) {
    var data = readJson("pm-finder-data");
    var target = document.getElementById("pm-finder-result");
    if (!data || !target) return;
    data.images.forEach(function (image) {
      // Keys are tag names from the registry: a map without a prototype, so that a tag named
      // `__proto__` or `constructor` is an ordinary key.
      var slugs = Object.create(null);
      Object.keys(image.slugs || {}).forEach(function (tag) { slugs[tag] = image.slugs[tag]; });
      (image.tagSlugs || []).forEach(function (s, i) { slugs[image.tags[i]] = s; });
      image.slugs = slugs;
    });
    var root = document.body.dataset.pmRoot || form.dataset.root || "../";
    function run() {
      var value = form.elements.version.value;
      if (value.trim()) answerFinder(data, value, target, root);
      else target.textContent = "";
      if (window.history && window.history.replaceState) {
        var url = new URL(window.location.href);
        if (value.trim()) url.searchParams.set("version", value.trim());
        else url.searchParams.delete("version");
        window.history.replaceState(null, "", url.toString());
      }
    }
    form.addEventListener("submit", function (event) { event.preventDefault(); run(); });
    form.elements.version.addEventListener("input", run);
    var given = new URL(window.location.href).searchParams.get("version");
    if (given) { form.elements.version.value = given; run(); }
  }

  /* ------------------------------------------------------------------ runbook */

  function initRunbook(form, rules) {
    var target = document.getElementById("pm-runbook-result");
    var live = readJson("pm-runbook-data") || { healthy: [], seen: {}, failing: [] };
    function run() {
      target.textContent = "";
      var text = form.elements.message.value;
      if (!text.trim()) return;
      var cls = classify(text);
      var info = rules.classes[cls] || rules.classes.unknown;
      var box = el("div", null, "pm-answer");
      box.dataset.class = cls;
      var title = el("h3", null);
      title.appendChild(el("span", cls, "pm-verdict v-" + cls + " pm-answer-class"));
      title.appendChild(document.createTextNode(" " + info.title));
      box.appendChild(title);
      box.appendChild(el("p", info.explanation));
      var action = el("p");
      action.appendChild(el("strong", "What to do: "));
      action.appendChild(document.createTextNode(info.action));
      box.appendChild(action);
      var related = live.failing.filter(function (f) {
        return f.verdict === cls || f.symptoms.indexOf(cls) !== -1;
      });
      if (related.length) {
        box.appendChild(el("p", "Failing like this right now (the registry's answer may hide this cause):"));
        var list = el("ul");
        related.forEach(function (f) {
          var item = el("li", f.location + ":" + f.tag + " — " + f.verdict + ". Pull instead: ");
          f.alternatives.forEach(function (command) { item.appendChild(el("code", command)); item.appendChild(document.createTextNode(" ")); });
          list.appendChild(item);
        });
        box.appendChild(list);
      }
      if (live.healthy.length) {
        box.appendChild(el("p", "Healthy registries in the latest run: " + live.healthy.join(", ") + "."));
      }
      var more = el("a", "More about " + cls);
      more.href = "#class-" + cls;
      box.appendChild(more);
      target.appendChild(box);
    }
    form.addEventListener("submit", function (event) { event.preventDefault(); run(); });
    form.elements.message.addEventListener("paste", function () { setTimeout(run, 0); });
  }

  /* ------------------------------------------------------------------ start */

  function start() {
    var rules = readJson("pm-rules");
    if (rules) compiled = compileRules(rules);
    var matrixForm = document.querySelector("form[data-matrix-controls]");
    if (matrixForm) initMatrix(matrixForm);
    var finderForm = document.querySelector("form[data-finder]");
    if (finderForm) initFinder(finderForm);
    var runbookForm = document.querySelector("form[data-runbook]");
    if (runbookForm && rules) initRunbook(runbookForm, rules);
  }

  window.pullMatrix = {
    classify: classify,
    parseVersion: parseVersion,
    nearestEngine: nearestEngine,
    supports: supports
  };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
