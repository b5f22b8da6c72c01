"""The local web page (`diffdiff ui`): paint a strength map over an image, edit, watch it run, keep results.

Gradio hosts the page; the strength canvas is our own JavaScript inside a `gr.HTML` block (static/). The
modules: `canvas` (the component and the map's form on the wire), `uploads` (checking what people send),
`map_tools` (the map buttons), `models` (the models on offer, each loaded once), `settings` (the controls
and the request they make), `jobs` (one run with progress, previews and cancel), `latent_preview`,
`results` (variations and history), `handlers` (what each event does), `page` (the layout) and `server`.
"""
