"""The hall's voice, shared by the announcer, the web daemon's recording page, the tools and the
benches: Vietnamese number reading (``numbers``), PCM (``pcm``), the voice pack format
(``voicepack``), composing a call from clips (``compose``), the generated default pack
(``voice_build``, ``tone``), recording takes (``voice_record``) and hearing calls with a
recogniser (``hearing``). It imports only the library (``xephang``): the one source of truth for
voice packs, so no daemon has to import another to make or read one."""
